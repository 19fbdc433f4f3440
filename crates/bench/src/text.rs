//! Realistic Japanese text for the dataset: people, places, facilities, groups, topics and
//! comments of home care (在宅医療). Every name is invented by combining parts; any likeness to
//! real people or facilities is coincidence. Everything is drawn from the caller's [`Rng`], so
//! the same seed gives the same text.

use crate::rng::Rng;
use std::fmt::Write as _;

fn pick<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    rng.pick(items).copied().unwrap_or_default()
}

fn pick2<'a>(rng: &mut Rng, items: &[(&'a str, &'a str)]) -> (&'a str, &'a str) {
    rng.pick(items).copied().unwrap_or_default()
}

/// (kanji, kana)
const SURNAMES: &[(&str, &str)] = &[
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
    ("林", "はやし"),
    ("斎藤", "さいとう"),
    ("清水", "しみず"),
    ("山崎", "やまざき"),
    ("森", "もり"),
    ("池田", "いけだ"),
    ("橋本", "はしもと"),
    ("阿部", "あべ"),
    ("石川", "いしかわ"),
    ("山下", "やました"),
    ("中島", "なかじま"),
    ("石井", "いしい"),
    ("小川", "おがわ"),
    ("前田", "まえだ"),
    ("岡田", "おかだ"),
    ("長谷川", "はせがわ"),
    ("藤田", "ふじた"),
    ("後藤", "ごとう"),
    ("近藤", "こんどう"),
    ("村上", "むらかみ"),
    ("遠藤", "えんどう"),
    ("青木", "あおき"),
    ("坂本", "さかもと"),
    ("斉藤", "さいとう"),
    ("福田", "ふくだ"),
    ("太田", "おおた"),
    ("西村", "にしむら"),
    ("藤井", "ふじい"),
    ("金子", "かねこ"),
    ("岡本", "おかもと"),
    ("藤原", "ふじわら"),
    ("中野", "なかの"),
    ("三浦", "みうら"),
    ("原田", "はらだ"),
    ("中川", "なかがわ"),
    ("松田", "まつだ"),
    ("竹内", "たけうち"),
    ("小野", "おの"),
    ("田村", "たむら"),
    ("中山", "なかやま"),
    ("和田", "わだ"),
    ("石田", "いしだ"),
    ("森田", "もりた"),
    ("上田", "うえだ"),
    ("原", "はら"),
    ("内田", "うちだ"),
    ("柴田", "しばた"),
    ("酒井", "さかい"),
    ("宮崎", "みやざき"),
    ("横山", "よこやま"),
    ("高木", "たかぎ"),
    ("安藤", "あんどう"),
    ("宮本", "みやもと"),
    ("大野", "おおの"),
    ("小島", "こじま"),
    ("工藤", "くどう"),
    ("谷口", "たにぐち"),
    ("今井", "いまい"),
    ("高田", "たかだ"),
    ("丸山", "まるやま"),
    ("増田", "ますだ"),
    ("杉山", "すぎやま"),
    ("村田", "むらた"),
    ("大塚", "おおつか"),
    ("小山", "こやま"),
    ("平野", "ひらの"),
    ("菅原", "すがわら"),
    ("久保", "くぼ"),
    ("松井", "まつい"),
    ("千葉", "ちば"),
    ("岩崎", "いわさき"),
    ("桜井", "さくらい"),
    ("野口", "のぐち"),
    ("川口", "かわぐち"),
    ("松尾", "まつお"),
    ("菊地", "きくち"),
    ("野村", "のむら"),
    ("新井", "あらい"),
    ("渡部", "わたべ"),
    ("武田", "たけだ"),
    ("川村", "かわむら"),
    ("北村", "きたむら"),
    ("望月", "もちづき"),
];

const GIVEN_NAMES: &[(&str, &str)] = &[
    ("健一", "けんいち"),
    ("誠", "まこと"),
    ("大輔", "だいすけ"),
    ("翔", "しょう"),
    ("隆", "たかし"),
    ("浩", "ひろし"),
    ("修", "おさむ"),
    ("拓也", "たくや"),
    ("直樹", "なおき"),
    ("和也", "かずや"),
    ("健太", "けんた"),
    ("亮", "りょう"),
    ("学", "まなぶ"),
    ("剛", "つよし"),
    ("聡", "さとし"),
    ("達也", "たつや"),
    ("雄一", "ゆういち"),
    ("智之", "ともゆき"),
    ("洋平", "ようへい"),
    ("正樹", "まさき"),
    ("博之", "ひろゆき"),
    ("康介", "こうすけ"),
    ("俊介", "しゅんすけ"),
    ("悠太", "ゆうた"),
    ("陽介", "ようすけ"),
    ("信也", "しんや"),
    ("哲也", "てつや"),
    ("昌弘", "まさひろ"),
    ("一郎", "いちろう"),
    ("太郎", "たろう"),
    ("次郎", "じろう"),
    ("正男", "まさお"),
    ("茂", "しげる"),
    ("勝", "まさる"),
    ("清", "きよし"),
    ("花子", "はなこ"),
    ("さくら", "さくら"),
    ("由美", "ゆみ"),
    ("愛", "あい"),
    ("恵", "めぐみ"),
    ("美穂", "みほ"),
    ("真由美", "まゆみ"),
    ("裕子", "ゆうこ"),
    ("久美子", "くみこ"),
    ("智子", "ともこ"),
    ("直美", "なおみ"),
    ("明美", "あけみ"),
    ("陽子", "ようこ"),
    ("恵子", "けいこ"),
    ("京子", "きょうこ"),
    ("幸子", "さちこ"),
    ("典子", "のりこ"),
    ("美香", "みか"),
    ("香織", "かおり"),
    ("麻衣", "まい"),
    ("彩", "あや"),
    ("舞", "まい"),
    ("沙織", "さおり"),
    ("千尋", "ちひろ"),
    ("瞳", "ひとみ"),
    ("綾香", "あやか"),
    ("奈々", "なな"),
    ("美咲", "みさき"),
    ("優子", "ゆうこ"),
    ("理恵", "りえ"),
    ("加奈子", "かなこ"),
    ("由紀", "ゆき"),
    ("早苗", "さなえ"),
    ("和子", "かずこ"),
    ("節子", "せつこ"),
    ("文子", "ふみこ"),
    ("トメ", "とめ"),
    ("キヨ", "きよ"),
    ("ハル", "はる"),
];

/// A person's name and its reading: (「山田 花子」, 「やまだ はなこ」).
pub fn person_name(rng: &mut Rng) -> (String, String) {
    let (s, sk) = pick2(rng, SURNAMES);
    let (g, gk) = pick2(rng, GIVEN_NAMES);
    (format!("{s} {g}"), format!("{sk} {gk}"))
}

/// A patient as the registration form records one.
pub struct PatientText {
    pub name: String,
    pub kana: String,
    /// YYYY-MM-DD.
    pub birth: String,
    pub sex: &'static str,
    pub town: String,
    pub care_level: &'static str,
    pub status: &'static str,
    pub end_reason: Option<&'static str>,
}

const TOWNS: &[&str] = &[
    "本町",
    "中央",
    "東町",
    "西町",
    "南町",
    "北町",
    "青葉町",
    "緑町",
    "桜ヶ丘",
    "旭町",
    "栄町",
    "港町",
    "川端町",
    "山手",
    "新町",
    "若葉台",
];

const CARE_LEVELS: &[&str] = &[
    "none", "applying", "support1", "support2", "care1", "care2", "care3", "care4", "care5",
];

pub fn patient(rng: &mut Rng) -> PatientText {
    let (name, kana) = person_name(rng);
    // Registers are written by hand: about half the readings are in katakana.
    let kana = if rng.chance(0.5) {
        kana.chars()
            .map(|c| match c {
                '\u{3041}'..='\u{3096}' => char::from_u32(c as u32 + 0x60).unwrap_or(c),
                _ => c,
            })
            .collect()
    } else {
        kana
    };
    let year = rng.range(1920, 1966);
    let month = rng.range(1, 13);
    let day = rng.range(1, 29);
    let status = match rng.below(20) {
        0..=14 => "home",
        15 | 16 => "hospital",
        17 | 18 => "facility",
        _ => "ended",
    };
    PatientText {
        name,
        kana,
        birth: format!("{year}-{month:02}-{day:02}"),
        sex: if rng.chance(0.5) { "male" } else { "female" },
        town: pick(rng, TOWNS).to_owned(),
        care_level: pick(rng, CARE_LEVELS),
        status,
        end_reason: (status == "ended").then(|| pick(rng, &["death", "moved", "other"])),
    }
}

pub fn surname(rng: &mut Rng) -> &'static str {
    pick2(rng, SURNAMES).0
}

const PLACE_HEADS: &[&str] = &[
    "みどり",
    "あさひ",
    "ひかり",
    "さくら",
    "かえで",
    "わかば",
    "あおば",
    "つばさ",
    "すずらん",
    "はなみずき",
    "白鷺",
    "桜川",
    "青葉",
    "若葉",
    "朝日",
    "富士見",
    "星見",
    "月見",
    "宮の",
    "松ノ木",
    "梅の",
    "竹の",
    "柏",
    "楓",
    "萩",
    "桐",
    "椿",
    "藤の",
    "菖蒲",
    "鶴見",
];
const PLACE_TAILS: &[&str] = &[
    "台", "野", "川", "浜", "丘", "ヶ原", "沢", "坂", "が浦", "ヶ谷",
];

/// A fictional place name, distinct for every index below 300 (「みどり台」, 「桜川浜」, …).
pub fn place(index: usize) -> String {
    let heads = PLACE_HEADS.len();
    let tails = PLACE_TAILS.len();
    // Step through heads and tails together so that neighbouring associations differ in both.
    let h = index % heads;
    let t = (index + index / heads) % tails;
    let mut s = String::from(PLACE_HEADS[h]);
    s.push_str(PLACE_TAILS[t]);
    if index >= heads * tails {
        let _ = write!(s, "{}", index / (heads * tails) + 1);
    }
    s
}

const NICKNAMES: &[&str] = &[
    "あおば",
    "ひまわり",
    "すずらん",
    "つくし",
    "なのはな",
    "さつき",
    "かもめ",
    "やまびこ",
    "こもれび",
    "ふれあい",
    "あじさい",
    "いちょう",
    "けやき",
    "もみじ",
    "わかば",
    "のぞみ",
    "ひだまり",
    "そよかぜ",
    "たんぽぽ",
    "こすもす",
    "なごみ",
    "えがお",
    "やすらぎ",
    "ほほえみ",
    "ぬくもり",
    "はるかぜ",
    "あゆみ",
    "みのり",
    "まごころ",
    "きずな",
];
const DISTRICTS: &[&str] = &[
    "駅前",
    "本町",
    "中央",
    "東町",
    "西町",
    "南口",
    "北口",
    "栄町",
    "緑町",
    "旭町",
    "新町",
    "港町",
    "昭和町",
    "寿町",
    "若松",
    "大手町",
    "末広",
    "錦町",
    "元町",
    "幸町",
];

/// A facility name of `kind` (a `core.facilities.kind` code) in `place`; not necessarily unique.
pub fn facility_name(rng: &mut Rng, kind: &str, place: &str) -> String {
    let sur = surname(rng);
    let nick = pick(rng, NICKNAMES);
    let dist = pick(rng, DISTRICTS);
    match kind {
        "clinic" => match rng.below(8) {
            0 => format!("{sur}内科クリニック"),
            1 => format!("{place}ファミリークリニック"),
            2 => format!("{sur}医院"),
            3 => format!("{dist}在宅クリニック"),
            4 => format!("{sur}整形外科"),
            5 => format!("{sur}歯科医院"),
            6 => format!("{nick}診療所"),
            _ => format!("{dist}{sur}内科"),
        },
        "hospital" => match rng.below(4) {
            0 => format!("{place}総合病院"),
            1 => format!("{place}中央病院"),
            2 => format!("{sur}記念病院"),
            _ => format!("{dist}病院"),
        },
        "visiting_nurse_station" => match rng.below(3) {
            0 => format!("訪問看護ステーション{nick}"),
            1 => format!("{place}訪問看護ステーション"),
            _ => format!("{dist}訪問看護ステーション"),
        },
        "care_management_office" => match rng.below(3) {
            0 => format!("{place}居宅介護支援事業所"),
            1 => format!("ケアプランセンター{nick}"),
            _ => format!("{dist}居宅介護支援事業所"),
        },
        "pharmacy" => match rng.below(4) {
            0 => format!("{place}薬局"),
            1 => format!("{sur}調剤薬局"),
            2 => format!("{nick}薬局 {dist}店"),
            _ => format!("{dist}薬局"),
        },
        "care_facility" => match rng.below(4) {
            0 => format!("特別養護老人ホーム{nick}"),
            1 => format!("グループホーム{nick}"),
            2 => format!("デイサービス{nick}"),
            _ => format!("小規模多機能ホーム{nick}"),
        },
        _ => match rng.below(2) {
            0 => format!("{place}地域包括支援センター"),
            _ => format!("{dist}地域包括支援センター"),
        },
    }
}

const CONDITIONS: &[&str] = &[
    "在宅酸素",
    "認知症・独居",
    "看取り期",
    "心不全",
    "COPD",
    "脳梗塞後遺症",
    "パーキンソン病",
    "がん末期",
    "糖尿病・インスリン",
    "褥瘡",
    "ALS",
    "慢性腎不全",
    "胃ろう",
    "老衰",
    "大腿骨骨折術後",
    "関節リウマチ",
    "誤嚥性肺炎後",
    "神経難病",
    "うっ血性心不全",
    "認知症・老老介護",
];

/// The name of a patient group: 「山田 花子 様（85歳・在宅酸素）」.
pub fn patient_group_name(rng: &mut Rng) -> String {
    let (name, _) = person_name(rng);
    let age = rng.range(62, 101);
    match rng.below(3) {
        0 => format!("{name} 様"),
        1 => format!("{name} 様（{age}歳・{}）", pick(rng, CONDITIONS)),
        _ => format!("{name}さん（{age}歳・{}）", pick(rng, CONDITIONS)),
    }
}

pub fn patient_group_description(rng: &mut Rng) -> String {
    let lines = [
        "訪問診療・訪問看護・ケアマネジャー・薬局で情報を共有するためのグループです。",
        "ご家族の同意を得て作成しました。緊急時は電話で連絡をお願いします。",
        "主治医・訪問看護・居宅介護支援の連絡用です。バイタルや服薬の変化はこちらへ。",
        "退院後の在宅療養を支えるチームです。",
        "",
    ];
    pick(rng, &lines).to_owned()
}

const GENERAL_BASES: &[&str] = &[
    "連携医グループ",
    "多職種連携の会",
    "在宅医療連絡会",
    "在宅緩和ケア勉強会",
    "認知症ケア連絡会",
    "褥瘡対策ネットワーク",
    "ACP（人生会議）を考える会",
    "災害時在宅医療ネットワーク",
    "感染対策連絡会",
    "訪問看護ステーション連絡会",
    "ケアマネジャー連絡会",
    "薬剤師 在宅部会",
    "リハビリ職の会",
    "退院支援ワーキング",
    "休日当番医の連絡",
    "摂食嚥下サポートチーム",
    "小児在宅ケアの会",
    "地域包括ケア推進会議",
];

/// Whether a general group of this base name gathers doctors (they get more doctors).
pub fn general_base_is_doctors(base: usize) -> bool {
    matches!(base, 0 | 14)
}

pub fn general_base_count() -> usize {
    GENERAL_BASES.len()
}

/// The name of a general group of `base` (see [`general_base_count`]) in `place`.
pub fn general_group_name(rng: &mut Rng, base: usize, place: &str) -> String {
    let b = GENERAL_BASES.get(base).copied().unwrap_or("多職種連携の会");
    match rng.below(3) {
        0 => format!("{place} {b}"),
        1 => format!("{b}（{}地区）", pick(rng, DISTRICTS)),
        _ => format!(
            "{place}{} {b}",
            pick(rng, &["北部", "南部", "東部", "西部", "中央"])
        ),
    }
}

pub fn general_group_description(rng: &mut Rng) -> String {
    let lines = [
        "地域の医療・介護職の情報交換の場です。研修会のお知らせや事例の相談にご利用ください。",
        "月1回の定例会の連絡と資料共有に使います。",
        "患者さんの個人情報は書き込まず、必要な場合は患者グループで共有してください。",
        "休日・夜間の当番や連絡体制の確認用です。",
        "参加を希望される方は申請してください。管理者が承認します。",
        "",
    ];
    pick(rng, &lines).to_owned()
}

fn date(rng: &mut Rng) -> (u64, u64) {
    (rng.range(1, 13), rng.range(1, 29))
}

const WEEKDAYS: &[&str] = &["月", "火", "水", "木", "金", "土", "日"];

const PATIENT_TITLES: &[&str] = &[
    "定期訪問診療の報告",
    "服薬状況について",
    "残薬の確認",
    "処方変更のお知らせ",
    "サービス担当者会議の日程調整",
    "ケアプラン変更について",
    "褥瘡の経過",
    "食事量低下について",
    "夜間の不穏・不眠について",
    "排便コントロールについて",
    "発熱時の対応",
    "転倒のご報告",
    "福祉用具（介護ベッド）の導入",
    "訪問リハビリの経過",
    "ショートステイ利用について",
    "採血結果の共有",
    "ご家族からの相談",
    "退院前カンファレンスのご案内",
    "今後の療養方針について",
    "緊急時の連絡体制",
    "口腔ケアについて",
    "在宅酸素の設定について",
    "インスリン自己注射の手技確認",
    "むくみ・体重増加について",
    "看取りに向けた話し合い",
    "訪問入浴の開始",
    "嚥下評価の結果",
    "疼痛コントロールについて",
    "デイサービス利用状況",
    "皮膚トラブル（発赤）について",
];

const GENERAL_TITLES: &[&str] = &[
    "休日当番表",
    "症例検討会のお知らせ",
    "多職種連携研修会のご案内",
    "災害時の連絡体制の確認",
    "感染症の流行状況について",
    "新規開業のご挨拶",
    "在宅緩和ケア勉強会 資料共有",
    "退院支援の流れについて意見交換",
    "連携ツールの運用ルール",
    "年末年始の診療体制",
    "訪問看護ステーション空き状況",
    "連絡会 議事録",
    "薬局の在宅対応状況一覧",
    "ACP（人生会議）の取り組み",
    "夜間・休日の連絡先一覧の更新",
    "地域の医療資源マップ更新",
    "インフルエンザワクチンの在庫状況",
    "認知症初期集中支援チームより",
    "褥瘡対策の勉強会",
    "講演会のご案内",
];

/// A topic title for a patient group (`patient`) or a general group.
pub fn topic_title(rng: &mut Rng, patient: bool) -> String {
    let (m, d) = date(rng);
    if patient {
        match rng.below(6) {
            0 => format!("訪問看護報告（{m}/{d}）"),
            1 => format!("{}（{m}/{d}）", pick(rng, PATIENT_TITLES)),
            _ => pick(rng, PATIENT_TITLES).to_owned(),
        }
    } else {
        match rng.below(5) {
            0 => format!("{m}月の{}", pick(rng, GENERAL_TITLES)),
            1 => format!("{}（{m}/{d}）", pick(rng, GENERAL_TITLES)),
            _ => pick(rng, GENERAL_TITLES).to_owned(),
        }
    }
}

const OBSERVATIONS: &[&str] = &[
    "食事は主食を半分ほど摂取されています。",
    "水分摂取が少なめで、口唇の乾燥があります。",
    "夜間は2回ほど覚醒があったとご家族より。",
    "日中は穏やかに過ごされ、テレビを見て笑顔も見られました。",
    "仙骨部の発赤は前回より縮小しています。",
    "下肢のむくみが増えており、靴下の跡が残ります。",
    "排便は3日ぶりにあり、普通便でした。",
    "痰がらみがあり、吸引で少量の白色痰を引けました。",
    "ふらつきがあり、トイレまでの移動は見守りが必要です。",
    "痛みの訴えはなく、表情は穏やかです。",
    "右膝の痛みを訴えられ、湿布を貼付しました。",
    "服薬カレンダーの昼の分が2日分残っていました。",
    "入浴介助を行い、皮膚に新たな傷はありませんでした。",
    "奥様の介護疲れが見られ、レスパイトの相談がありました。",
    "体重は先月より1.5kg減少しています。",
    "呼吸苦の訴えはなく、労作時のみ軽度の息切れがあります。",
    "会話のつじつまが合わないことが増えているとご家族より。",
    "嚥下時にむせ込みが見られました。とろみ剤を使用中です。",
    "血糖は朝食前で140前後と安定しています。",
    "酸素は安静時1L、労作時2Lで経過しています。",
    "点滴刺入部に腫れや発赤はありません。",
    "歩行器での室内歩行が安定してきました。",
    "不眠の訴えがあり、日中の活動量を増やす工夫をしています。",
    "ご本人から「家で過ごしたい」との言葉がありました。",
];

const PLANS: &[&str] = &[
    "次回訪問時に再評価します。",
    "水分摂取を促すようご家族にお伝えしました。",
    "先生、利尿剤の調整についてご検討いただけますでしょうか。",
    "ケアマネジャーさん、福祉用具の見直しをお願いできますか。",
    "薬局さん、一包化の検討をお願いします。",
    "訪問回数を週2回から週3回に増やすことを提案します。",
    "体位変換の間隔を2時間ごとに徹底していただくようお伝えしました。",
    "状態に変化があれば訪問看護に連絡いただくよう説明済みです。",
    "次回のサービス担当者会議で共有したいと思います。",
    "リハビリでは引き続き立ち上がり訓練を行います。",
    "ご家族の希望もあり、ショートステイの利用を調整します。",
    "しばらく経過観察とします。",
];

const OPENERS: &[&str] = &[
    "ご報告ありがとうございます。",
    "承知しました。",
    "確認しました。",
    "ありがとうございます。",
    "いつもお世話になっております。",
    "了解です。",
    "情報共有ありがとうございます。",
    "お疲れさまです。",
];

const REPLIES: &[&str] = &[
    "次回の訪問診療で診察します。",
    "利尿剤を1錠から1.5錠に増量します。本日から処方変更になります。",
    "眠剤は現状維持で様子を見ましょう。",
    "湿布は1日1回に変更してください。",
    "採血を次回の訪問時に行います。",
    "発熱が続くようであれば臨時で往診します。ご連絡ください。",
    "福祉用具の業者さんに連絡し、来週デモ機を入れる予定です。",
    "ケアプランに訪問リハビリを追加する方向で調整します。",
    "一包化に変更しました。次回のお届けから反映されます。",
    "残薬は次回訪問時に回収して調整します。",
    "ご家族にも同じ内容をお伝えしています。",
    "担当者会議は来週水曜14時からでいかがでしょうか。",
    "その時間であれば参加できます。",
    "申し訳ありません、その日は都合がつきません。翌日であれば可能です。",
    "ショートステイは来月第2週で空きがあるそうです。",
    "口腔ケアの方法をヘルパーさんにも共有しておきます。",
    "とろみの濃さを少し強めにしてみてください。",
    "SpO2が90%を下回るようなら酸素流量を2Lに上げてください。",
    "体重は毎朝同じ条件で測っていただくようお願いしています。",
    "入浴は体調をみながら継続で問題ありません。",
    "痛みが強い時は頓用のカロナールを使ってください。",
    "看取りについてご家族の気持ちが揺れているようなので、改めて面談の場を設けたいです。",
    "デイサービスでの様子も特に変わりないとのことです。",
    "夜間の連絡先は訪問看護ステーションの緊急携帯でお願いします。",
    "訪問時間を午前に変更することは可能です。",
    "ご本人も了承されています。",
    "リハビリ中に血圧低下はありませんでした。",
    "褥瘡の処置は現在の方法を継続します。",
];

const CLOSINGS: &[&str] = &[
    "",
    "",
    "よろしくお願いします。",
    "引き続きよろしくお願いいたします。",
    "何かあればご連絡ください。",
    "ご確認をお願いします。",
];

fn vitals(rng: &mut Rng, out: &mut String) {
    let t = 36.0 + rng.below(16) as f64 / 10.0;
    let sys = rng.range(98, 162);
    let dia = rng.range(52, 96);
    let pulse = rng.range(56, 104);
    let spo2 = rng.range(90, 100);
    let _ = write!(
        out,
        "体温{t:.1}℃、血圧{sys}/{dia}mmHg、脈拍{pulse}回/分、SpO2 {spo2}%。"
    );
}

/// The body of a topic (its comment number 1).
pub fn topic_body(rng: &mut Rng, patient: bool) -> String {
    let mut s = String::with_capacity(512);
    if patient {
        let (m, d) = date(rng);
        let h = rng.range(9, 18);
        let _ = writeln!(s, "{m}/{d} {h}時に訪問しました。");
        vitals(rng, &mut s);
        s.push('\n');
        for _ in 0..rng.range(1, 4) {
            s.push_str(pick(rng, OBSERVATIONS));
        }
        s.push('\n');
        s.push_str(pick(rng, PLANS));
    } else {
        let (m, d) = date(rng);
        let wd = pick(rng, WEEKDAYS);
        let h = rng.range(13, 20);
        s.push_str(pick(rng, &["皆さま", "各位", "会員の皆さま"]));
        s.push_str("\nいつもお世話になっております。\n");
        match rng.below(3) {
            0 => {
                let _ = write!(
                    s,
                    "下記の通り開催します。\n日時：{m}月{d}日（{wd}）{h}時〜\n場所：{}\n",
                    pick(
                        rng,
                        &[
                            "医師会館 2階会議室",
                            "オンライン（Zoom）",
                            "市民センター 研修室"
                        ]
                    )
                );
                s.push_str("ご参加をお待ちしております。");
            }
            1 => {
                s.push_str(
                    "地域の連絡体制について意見を伺いたく投稿しました。\
                     各事業所での工夫があれば教えてください。",
                );
            }
            _ => {
                let _ = write!(
                    s,
                    "{m}月分の資料を共有します。ご確認のうえ、修正があれば{d}日までにお知らせください。"
                );
            }
        }
    }
    s
}

/// A reply in a topic (patient or general).
pub fn reply_body(rng: &mut Rng, patient: bool) -> String {
    if !patient && rng.chance(0.5) {
        let lines = [
            "参加します。",
            "当院は2名で参加予定です。",
            "資料ありがとうございます。確認しました。",
            "当日は所用のため欠席します。資料の共有をお願いできますか。",
            "当事業所では夜間は緊急携帯で対応しています。",
            "休日当番の件、第3日曜を交換していただける先生はいらっしゃいますか。",
            "交換可能です。こちらで当番表を修正しておきます。",
            "先日の研修、大変勉強になりました。ありがとうございました。",
            "在庫に余裕がありますので、必要な方はご連絡ください。",
        ];
        let mut s = String::from(pick(rng, OPENERS));
        s.push_str(pick(rng, &lines));
        return s;
    }
    comment_body(rng)
}

/// A reply in a patient group: what the load driver posts as well.
pub fn comment_body(rng: &mut Rng) -> String {
    let mut s = String::with_capacity(256);
    match rng.below(10) {
        // A short acknowledgement.
        0..=2 => {
            s.push_str(pick(rng, OPENERS));
            s.push_str(pick(rng, CLOSINGS));
        }
        // A visit report with vitals.
        3..=4 => {
            s.push_str(pick(
                rng,
                &["本日訪問しました。", "訪問報告です。", "本日の様子です。"],
            ));
            s.push('\n');
            vitals(rng, &mut s);
            s.push('\n');
            for _ in 0..rng.range(1, 3) {
                s.push_str(pick(rng, OBSERVATIONS));
            }
            if rng.chance(0.6) {
                s.push('\n');
                s.push_str(pick(rng, PLANS));
            }
        }
        // An answer, an instruction or a schedule.
        _ => {
            s.push_str(pick(rng, OPENERS));
            for _ in 0..rng.range(1, 3) {
                s.push_str(pick(rng, REPLIES));
            }
            let closing = pick(rng, CLOSINGS);
            if !closing.is_empty() {
                s.push('\n');
                s.push_str(closing);
            }
        }
    }
    s
}

/// What an edit adds to a comment.
pub fn addendum(rng: &mut Rng) -> String {
    let lines = [
        "（追記）先ほどご家族からも同様の連絡がありました。",
        "（追記）日付を訂正しました。",
        "（訂正）血圧は座位での値です。",
        "（追記）薬局さんにも連絡済みです。",
        "（追記）次回訪問は金曜日です。",
    ];
    pick(rng, &lines).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_distinct_and_text_is_deterministic() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..300 {
            assert!(seen.insert(place(i)), "duplicate place at {i}");
        }
        let a = comment_body(&mut Rng::new(3));
        let b = comment_body(&mut Rng::new(3));
        assert_eq!(a, b);
        assert!(!a.trim().is_empty());
    }

    #[test]
    fn lengths_fit_the_schema() {
        let mut rng = Rng::new(9);
        for _ in 0..2000 {
            assert!(topic_title(&mut rng, true).chars().count() <= 200);
            assert!(topic_title(&mut rng, false).chars().count() <= 200);
            assert!(patient_group_name(&mut rng).chars().count() <= 100);
            assert!(
                facility_name(&mut rng, "hospital", "みどり台")
                    .chars()
                    .count()
                    <= 100
            );
            let patient = rng.chance(0.5);
            let b = topic_body(&mut rng, patient);
            assert!((1..=10_000).contains(&b.chars().count()));
            let r = reply_body(&mut rng, patient);
            assert!(!r.trim().is_empty());
        }
    }
}
