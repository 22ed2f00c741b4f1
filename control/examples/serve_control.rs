//! The control plane alone (no media engine), for benchmarking and debugging it in isolation:
//! `cargo run --release -p parley-control --example serve_control -- LISTEN DATABASE_URL`.
//! `parley serve` is the real entry point.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()?;
    let database_url = args.next().unwrap_or_else(|| "sqlite://parley.db".into());
    parley_control::serve(parley_control::ServeConfig {
        listen,
        database_url,
    })
    .await
}
