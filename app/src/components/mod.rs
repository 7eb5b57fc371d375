//! UI components, one file each, named for what the user sees.

mod about;
mod backend_badge;
mod chat_panel;
mod composer;
mod conversations;
mod drop_zone;
mod engine_notice;
mod load_progress;
mod message_list;
mod model_picker;
mod settings_panel;
mod sidebar_head;
mod storage_view;
mod top_bar;

pub use about::About;
pub use backend_badge::BackendBadge;
pub use chat_panel::ChatPanel;
pub use composer::Composer;
pub use conversations::Conversations;
pub use drop_zone::DropZone;
pub use engine_notice::EngineNotice;
pub use load_progress::LoadProgress;
pub use message_list::MessageList;
pub use model_picker::ModelPicker;
pub use settings_panel::SettingsPanel;
pub use sidebar_head::SidebarHead;
pub use storage_view::StorageView;
pub use top_bar::TopBar;
