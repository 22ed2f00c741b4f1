//! `parley`: the one binary. It wires the crates together; the logic lives in them.

mod dial;
mod load;
mod twilio_client;
mod vad_cmd;

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

/// Parley: a real-time voice media engine with an embedded control plane.
#[derive(Debug, Parser)]
#[command(name = "parley", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: media endpoints and the control-plane API.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "PARLEY_LISTEN", default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
        /// Database URL: `sqlite://FILE` (default) or `postgres://…`.
        #[arg(long, env = "DATABASE_URL", default_value = "sqlite://parley.db")]
        database_url: String,
    },
    /// Detect speech segments and turn ends in a WAV file; prints JSON lines.
    Vad(vad_cmd::VadArgs),
    /// Call an agent as Twilio would: stream a WAV, record the reply, print the transcript.
    Dial(dial::DialArgs),
    /// Load-test a running server with concurrent Twilio calls; report pacing, late and
    /// missing frames, barge-in reaction, errors, server CPU and memory per call.
    ///
    /// Creates an agent with scripted providers (no delays; the agent greets, answers every
    /// turn with a fixed reply, and its voice is a tone of 60 ms per character, so each
    /// utterance's length is known), places --calls calls through the Twilio voice webhook
    /// and Media Streams at --connect-rate per second, and once all are up measures
    /// --duration seconds of steady state, then hangs up and deletes the agent. Each caller
    /// sends 20 ms μ-law frames in real time, echoes marks when its playout reaches them,
    /// answers each utterance that plays out, and talks over every other one 800 ms in
    /// (which must bring a `clear`).
    ///
    /// Jitter: |arrival − 20 ms grid| of each agent frame after an utterance's 100 ms lead,
    /// the grid anchored at the utterance's median (as `parley dial`). Late frame: a frame
    /// that arrives after the caller's playout of the earlier frames of its utterance ran
    /// dry. Missing frames: expected − received for utterances not ended by `clear` or
    /// hang-up. Barge-in: from the first frame of the caller's interruption to `clear`.
    /// Server CPU and RSS come from GET /metrics (process_cpu_seconds_total,
    /// process_resident_memory_bytes), else from /proc with --server-pid, else null; RSS
    /// per call is meaningful on a freshly started server (freed memory is kept and reused).
    /// client_send_lag is how late this tool sent its own frames: when it is high, the
    /// client, not the server, was the bottleneck.
    ///
    /// --ramp runs steps of 50, 100, 200, … up to --calls and reports the capacity: the
    /// largest step with p99 jitter ≤ --max-p99-jitter-ms, late frames ≤ --max-late-frames
    /// and no errors. --sequential COUNT runs COUNT calls of --call-secs, --calls at a time,
    /// and reports the server's RSS at the start, after every 10% and at the end (it takes
    /// about COUNT × call-secs / calls seconds).
    ///
    /// Progress goes to stderr once a second; the summary to stdout, as a table or, with
    /// --json, as one JSON object.
    Load(load::LoadArgs),
    /// Manage control-plane API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create an API key for a tenant (creating the tenant if needed); prints the key on stdout.
    Create {
        /// Tenant (organization) name.
        #[arg(long)]
        tenant: String,
        /// Database URL: `sqlite://FILE` (default) or `postgres://…`.
        #[arg(long, env = "DATABASE_URL", default_value = "sqlite://parley.db")]
        database_url: String,
        /// A label for the key.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Comma-separated scopes: read, write, admin.
        #[arg(long, default_value = "admin", value_delimiter = ',')]
        scopes: Vec<String>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            listen,
            database_url,
        } => serve(listen, database_url),
        Command::Vad(args) => vad_cmd::run(&args),
        Command::Dial(args) => dial::run(&args),
        Command::Load(args) => load::run(&args),
        Command::Keys {
            command:
                KeysCommand::Create {
                    tenant,
                    database_url,
                    name,
                    scopes,
                },
        } => create_key(&database_url, &tenant, &name, &scopes),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve(listen: SocketAddr, database_url: String) -> anyhow::Result<()> {
    init_logging();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(parley_control::serve(parley_control::ServeConfig {
        listen,
        database_url,
    }))
}

fn create_key(
    database_url: &str,
    tenant: &str,
    name: &str,
    scopes: &[String],
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let key = rt.block_on(parley_control::bootstrap_key(
        database_url,
        tenant,
        name,
        scopes,
    ))?;
    println!("{key}");
    Ok(())
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PARLEY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
