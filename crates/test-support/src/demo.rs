//! The demo data's people, by the part they play in tests (all sign in with
//! `musubi_demo::DEMO_PASSWORD`). Seeded by [`crate::TestApp::demo`].

/// The association hosting most demo groups (みなと川).
pub const HOST: &str = "minatogawa";
/// The other demo association (さくら台).
pub const OTHER: &str = "sakuradai";

/// みなと川's administrator (港): owner of 多職種連携の会, in no patient group.
pub const ADMIN: &str = "admin@minatogawa.example";
/// Clinic doctor of みなと川 (川村): owner of the 山田 and 田中 patient groups and of the
/// doctors' group.
pub const CLINIC_DOCTOR: &str = "kawamura@minatogawa.example";
/// Clinic doctors of みなと川 (大野, 松井): members of the doctors' group only; they take part
/// in its on-call duty rotation.
pub const CLINIC_DOCTOR_2: &str = "oono@minatogawa.example";
pub const CLINIC_DOCTOR_3: &str = "matsui@minatogawa.example";
/// Nurse of みなと川 (青木).
pub const NURSE: &str = "aoki@minatogawa.example";
/// Care manager of みなと川 (森田): the only owner of the 鈴木 patient group.
pub const CARE_MANAGER: &str = "morita@minatogawa.example";
/// Pharmacist of みなと川 (林).
pub const PHARMACIST: &str = "hayashi@minatogawa.example";
/// Physical therapist of みなと川 (石井).
pub const THERAPIST: &str = "ishii@minatogawa.example";
/// Hospital doctor (佐藤), member of both associations.
pub const HOSPITAL_DOCTOR: &str = "sato@sakuradai-hospital.example";
/// さくら台's administrator (桜井).
pub const OTHER_ADMIN: &str = "admin@sakuradai.example";
/// Nurse of さくら台 only (中村).
pub const OTHER_NURSE: &str = "nakamura@sakuradai.example";
/// Clinic doctor of さくら台 only (高橋).
pub const OTHER_DOCTOR: &str = "takahashi@sakuradai.example";
