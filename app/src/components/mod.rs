//! UI components, one file each, named for what the user sees.

mod backend_badge;
mod chat_panel;
mod composer;
mod conversations;
mod drop_zone;
mod engine_notice;
mod header;
mod load_progress;
mod message_list;
mod model_picker;
mod settings_panel;
mod storage_view;
mod supported_types;

pub use backend_badge::BackendBadge;
pub use chat_panel::ChatPanel;
pub use composer::Composer;
pub use conversations::Conversations;
pub use drop_zone::DropZone;
pub use engine_notice::EngineNotice;
pub use header::Header;
pub use load_progress::LoadProgress;
pub use message_list::MessageList;
pub use model_picker::ModelPicker;
pub use settings_panel::SettingsPanel;
pub use storage_view::StorageView;
pub use supported_types::SupportedTypes;
