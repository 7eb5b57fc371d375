//! UI components, one file each, named for what the user sees.

mod backend_badge;
mod chat_panel;
mod header;
mod supported_types;

pub use backend_badge::BackendBadge;
pub use chat_panel::ChatPanel;
pub use header::Header;
pub use supported_types::SupportedTypes;
