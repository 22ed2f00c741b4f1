//! `parley`: the one binary. It wires the crates together; the logic lives in them.

mod dial;
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
