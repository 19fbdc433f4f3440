//! A register of fictional patients for the demo, beyond the scripted ones: registered through
//! the services (so audit records are what real use leaves) by two office staff made for it,
//! one per demo association, so that the scripted people's pages stay as the script made them.
//! Names, readings, dates and towns come from a fixed seed: every demo looks the same.

use musubi_db::accounts::{self as repo, NewUser};
use musubi_domain::audit::RequestMeta;
use musubi_domain::operator::Operator;
use musubi_domain::patients::PatientForm;
use musubi_domain::types::{AssociationRole, CareLevel, EndReason, PatientStatus, Profession, Sex};
use musubi_domain::{Actor, AppError, AppResult};

/// How many `musubi demo` adds unless told otherwise.
pub const DEFAULT_EXTRA_PATIENTS: usize = 300;

struct Clerk {
    association: &'static str,
    email: &'static str,
    name: &'static str,
    kana: &'static str,
    facility: &'static str,
    towns: &'static [&'static str],
}

const CLERKS: [Clerk; 2] = [
    Clerk {
        association: "minatogawa",
        email: "ogawa@minatogawa.example",
        name: "小川 ひとみ",
        kana: "おがわ ひとみ",
        facility: "みなと居宅介護支援事業所",
        towns: &["青葉町", "港南町", "川端町", "緑町", "本町", "汐見町"],
    },
    Clerk {
        association: "sakuradai",
        email: "kimura@sakuradai.example",
        name: "木村 真由美",
        kana: "きむら まゆみ",
        facility: "さくら台ケアプランセンター",
        towns: &["東町", "西町", "桜ヶ丘", "中央", "北町", "南台"],
    },
];

const FAMILY: [(&str, &str); 24] = [
    ("佐藤", "さとう"),
    ("鈴木", "すずき"),
    ("高橋", "たかはし"),
    ("田中", "たなか"),
    ("伊藤", "いとう"),
    ("渡辺", "わたなべ"),
    ("山本", "やまもと"),
    ("中村", "なかむら"),
    ("小林", "こばやし"),
    ("加藤", "かとう"),
    ("吉田", "よしだ"),
    ("山田", "やまだ"),
    ("佐々木", "ささき"),
    ("山口", "やまぐち"),
    ("松本", "まつもと"),
    ("井上", "いのうえ"),
    ("木村", "きむら"),
    ("斎藤", "さいとう"),
    ("清水", "しみず"),
    ("山崎", "やまざき"),
    ("森", "もり"),
    ("池田", "いけだ"),
    ("橋本", "はしもと"),
    ("阿部", "あべ"),
];

const MEN: [(&str, &str); 12] = [
    ("茂", "しげる"),
    ("清", "きよし"),
    ("博", "ひろし"),
    ("実", "みのる"),
    ("勇", "いさむ"),
    ("正雄", "まさお"),
    ("和夫", "かずお"),
    ("進", "すすむ"),
    ("弘", "ひろし"),
    ("昭二", "しょうじ"),
    ("武", "たけし"),
    ("三郎", "さぶろう"),
];

const WOMEN: [(&str, &str); 12] = [
    ("和子", "かずこ"),
    ("幸子", "さちこ"),
    ("節子", "せつこ"),
    ("洋子", "ようこ"),
    ("恵子", "けいこ"),
    ("京子", "きょうこ"),
    ("トミ", "とみ"),
    ("ハル", "はる"),
    ("美代子", "みよこ"),
    ("久子", "ひさこ"),
    ("千代", "ちよ"),
    ("静江", "しずえ"),
];

const DIAGNOSES: [&str; 10] = [
    "慢性心不全",
    "COPD（在宅酸素療法）",
    "アルツハイマー型認知症",
    "脳梗塞後遺症",
    "パーキンソン病",
    "末期がん（緩和ケア）",
    "糖尿病・慢性腎臓病",
    "大腿骨頸部骨折術後",
    "老衰",
    "関節リウマチ",
];

/// A small fixed-seed generator (xorshift): the same register in every demo.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Adds `count` fictional patients, spread over the demo associations. Call after
/// [`crate::seed_if_empty`] seeded.
pub async fn seed_register(op: &Operator, count: usize) -> AppResult<()> {
    if count == 0 {
        return Ok(());
    }
    let hash = musubi_auth::password::hash_password_async(crate::DEMO_PASSWORD.to_owned())
        .await
        .map_err(AppError::internal)?;
    let client = RequestMeta::new("", "musubi demo");
    let mut dice = Dice(0x6d75_7375_6269_2026);
    for (i, clerk) in CLERKS.iter().enumerate() {
        let tenant = op.services().resolve_tenant(clerk.association).await?;
        let facility = repo::facilities_of(op.db().pool(), tenant.id)
            .await?
            .into_iter()
            .find(|f| f.name == clerk.facility)
            .map(|f| f.id);
        let mut tx = op.db().core_tx().await?;
        let user = repo::insert_user(
            &mut tx,
            &NewUser {
                email: clerk.email,
                name: clerk.name,
                name_kana: clerk.kana,
                profession: Profession::CareManager,
                doctor_kind: None,
                password_hash: Some(&hash),
            },
        )
        .await?;
        repo::insert_membership(&mut tx, user, tenant.id, AssociationRole::Member, facility)
            .await?;
        tx.commit().await.map_err(AppError::internal)?;
        let viewer = op.act_as(clerk.email).await?;
        let actor = Actor::new(&viewer, &tenant, &client);
        let share = count / CLERKS.len() + usize::from(i < count % CLERKS.len());
        for _ in 0..share {
            let form = patient(&mut dice, clerk.towns, clerk.association);
            op.services().register_patient(&actor, &form, &[]).await?;
        }
        tracing::info!(
            association = clerk.association,
            patients = share,
            "demo register seeded"
        );
    }
    Ok(())
}

fn patient(dice: &mut Dice, towns: &[&str], association: &str) -> PatientForm {
    let (family, family_kana) = *dice.pick(&FAMILY);
    let male = dice.below(2) == 0;
    let (given, given_kana) = *dice.pick(if male { &MEN } else { &WOMEN });
    let year = 1925 + dice.below(40);
    let month = 1 + dice.below(12);
    let day = 1 + dice.below(28);
    let town = *dice.pick(towns);
    let area = if association == "minatogawa" {
        "みなと川区"
    } else {
        "さくら台市"
    };
    let care = *dice.pick(CareLevel::ALL);
    let status = match dice.below(20) {
        0..=14 => PatientStatus::Home,
        15 | 16 => PatientStatus::Hospital,
        17 | 18 => PatientStatus::Facility,
        _ => PatientStatus::Ended,
    };
    let end_reason = (status == PatientStatus::Ended).then(|| *dice.pick(EndReason::ALL));
    // Readings half in katakana, as many offices write them: search finds both.
    let kana = if dice.below(2) == 0 {
        format!("{family_kana} {given_kana}")
    } else {
        to_katakana(&format!("{family_kana} {given_kana}"))
    };
    PatientForm {
        name: format!("{family} {given}"),
        name_kana: kana,
        birth_date: format!("{year}-{month:02}-{day:02}"),
        sex: Some(if male { Sex::Male } else { Sex::Female }),
        town: format!("{area} {town}"),
        address: format!("{area}{town}{}-{}", 1 + dice.below(9), 1 + dice.below(30)),
        diagnoses: (*dice.pick(&DIAGNOSES)).to_owned(),
        care_level: Some(care),
        status: Some(status),
        end_reason,
        ..PatientForm::default()
    }
}

fn to_katakana(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{3041}'..='\u{3096}' => char::from_u32(c as u32 + 0x60).unwrap_or(c),
            _ => c,
        })
        .collect()
}
