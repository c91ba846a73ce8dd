//! Logging goes to stderr, always: stdout belongs to `--pipe`.

use tracing_subscriber::EnvFilter;

/// Default filter: Lucid at info, the GPU stack only when something is wrong.
const DEFAULT_FILTER: &str = "info,wgpu=error,wgpu_core=error,wgpu_hal=error,naga=warn,bevy_render=warn,bevy_winit=warn,bevy_app=warn,bevy_asset=warn";

/// Installs the stderr logger. `RUST_LOG` overrides the filter.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .try_init();
}
