//! Attachments: a share of comments carry a photo or a PDF, as replies with files do. Their
//! rows go in with COPY like the rest (`files`, migration tenant/0007); their objects are
//! written through the S3 client the server uses into the store it will read: the embedded
//! store over `<data dir>/files`, or the one `MUSUBI_S3_*` names.

use super::load::Ctx;
use super::model::{id_at, Model, DELETED, SECOND};
use crate::rng::Rng;
use crate::samples;
use anyhow::Context as _;
use bytes::Bytes;
use futures_util::StreamExt as _;
use musubi_storage::embedded::Embedded;
use musubi_storage::{Settings, Store};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::path::Path;
use uuid::Uuid;

const FILE_SALT: u64 = 0x0F11_E5A7;
/// Objects written at once.
const PUTS_AT_ONCE: usize = 16;

/// What attachments' objects hold: one of a few photos and documents, each shared by many
/// rows (every row still has an object of its own).
pub struct Template {
    pub bytes: Bytes,
    /// A photo's thumbnail (`<key>.t`). Its preview (`<key>.p`) is the photo itself, which is
    /// within the preview's size already.
    pub thumb: Option<Bytes>,
    pub content_type: &'static str,
    pub sha256: [u8; 32],
    pub width: Option<u32>,
    pub height: Option<u32>,
}

impl Template {
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// Photos first ([`PHOTOS`] of them), then documents.
pub struct Templates(Vec<Template>);

/// Photos of a phone's camera sent at a small size (about 45 KB): the objects of a medium
/// dataset stay within a few GB.
const PHOTO_SIZES: [(u32, u32); 3] = [(640, 480), (480, 640), (640, 480)];
const PHOTOS: usize = PHOTO_SIZES.len();
/// Referral letters, results and care plans: one page each, 30–160 KB.
const DOCUMENT_FILLERS: [usize; 3] = [30_000, 80_000, 160_000];
const DOCUMENT_NAMES: [&str; 6] = [
    "検査結果.pdf",
    "診療情報提供書.pdf",
    "処方内容.pdf",
    "ケアプラン.pdf",
    "訪問看護報告書.pdf",
    "褥瘡評価表.pdf",
];

impl Templates {
    pub fn build(seed: u64) -> anyhow::Result<Self> {
        let mut all = Vec::new();
        for (i, (w, h)) in PHOTO_SIZES.into_iter().enumerate() {
            let p = samples::photo(w, h, 10, 80, seed ^ (0x0A11_0000 + i as u64))?;
            all.push(Template {
                sha256: Sha256::digest(&p.jpeg).into(),
                bytes: Bytes::from(p.jpeg),
                thumb: Some(Bytes::from(p.thumb)),
                content_type: samples::JPEG,
                width: Some(p.width),
                height: Some(p.height),
            });
        }
        for (i, filler) in DOCUMENT_FILLERS.into_iter().enumerate() {
            let doc = samples::pdf(
                "Musubi benchmark document",
                filler,
                seed ^ (0x0D0C_0000 + i as u64),
            );
            all.push(Template {
                sha256: Sha256::digest(&doc).into(),
                bytes: Bytes::from(doc),
                thumb: None,
                content_type: samples::PDF,
                width: None,
                height: None,
            });
        }
        Ok(Self(all))
    }

    pub fn get(&self, i: usize) -> &Template {
        &self.0[i % self.0.len()]
    }
}

/// One comment's attachment.
pub struct Attachment {
    pub id: Uuid,
    /// Index into [`Templates`].
    pub template: usize,
    pub name: String,
    /// What an attachment uploaded with a comment is: `image` for photos, `other` for the rest.
    pub kind: &'static str,
    pub uploaded_t: i64,
}

/// The attachment of comment `index`, if it has one: `per_mille` of the comments that are not
/// deleted carry one, three in four a photo. From the seed and the index alone, so that the
/// rows, the objects and the manifest agree.
pub fn of_comment(m: &Model, per_mille: u32, index: u32) -> Option<Attachment> {
    let c = &m.comments[index as usize];
    if c.flags & DELETED != 0 {
        return None;
    }
    let mut r = Rng::new(m.seed ^ FILE_SALT).fork(u64::from(index));
    if r.below(1000) >= u64::from(per_mille) {
        return None;
    }
    // Uploaded while the comment was being written.
    let uploaded_t = c.t - r.range(5 * SECOND as u64, 120 * SECOND as u64) as i64;
    let id = id_at(uploaded_t, &mut r);
    let (template, name, kind) = if r.chance(0.75) {
        let photo = r.below(PHOTOS as u64) as usize;
        (
            photo,
            format!("IMG_{:04}.jpg", r.range(1000, 10_000)),
            "image",
        )
    } else {
        let doc = r.below(DOCUMENT_FILLERS.len() as u64) as usize;
        let name = r.pick(&DOCUMENT_NAMES).copied().unwrap_or("資料.pdf");
        (PHOTOS + doc, name.to_owned(), "other")
    };
    Some(Attachment {
        id,
        template,
        name,
        kind,
        uploaded_t,
    })
}

/// As the server names objects: `a/<association id>/<file id>`.
pub fn object_key(association: Uuid, file: Uuid) -> String {
    format!("a/{}/{}", association.simple(), file.simple())
}

/// The store `musubi serve` would use with this data directory, and the embedded store
/// running for it (if that is the one), which lives as long as this value.
pub struct FileStore {
    pub store: Store,
    pub description: String,
    _embedded: Option<Embedded>,
}

/// Opens the server's file store as `musubi serve` does: its configuration from the
/// environment (a `MUSUBI_CONFIG` file is not read), with `data_dir` as its data directory.
pub async fn open_store(data_dir: &Path) -> anyhow::Result<FileStore> {
    let mut env: HashMap<String, String> = std::env::vars().collect();
    env.insert(
        "MUSUBI_DATA_DIR".to_owned(),
        data_dir.to_string_lossy().into_owned(),
    );
    let config = musubi_config::Config::from_sources(&env, None)
        .context("the server's configuration for its file store")?;
    let f = &config.files;
    let (settings, embedded) = match &f.s3_endpoint {
        Some(endpoint) => (
            Settings {
                endpoint: endpoint.clone(),
                region: f.s3_region.clone(),
                bucket: f.s3_bucket.clone(),
                path_style: f.s3_path_style,
                credentials: f.s3_credentials.clone(),
            },
            None,
        ),
        None => {
            let dir = config.data_dir.join("files");
            let embedded = Embedded::start(&dir)
                .await
                .with_context(|| format!("cannot start the file store over {}", dir.display()))?;
            (embedded.settings().clone(), Some(embedded))
        }
    };
    let store = Store::connect(&settings).await;
    store
        .ensure_bucket()
        .await
        .with_context(|| format!("the file store at {}", settings.endpoint))?;
    let description = match &embedded {
        Some(_) => format!("{}/files", config.data_dir.display()),
        None => format!("{} (bucket {})", settings.endpoint, settings.bucket),
    };
    Ok(FileStore {
        store,
        description,
        _embedded: embedded,
    })
}

/// Writes the objects of every attachment (photos with their preview and thumbnail); returns
/// how many objects.
pub async fn store_objects(store: &Store, ctx: &Ctx) -> anyhow::Result<u64> {
    let m = &ctx.model;
    let mut puts: Vec<(String, Bytes, &'static str)> = Vec::new();
    for index in 0..m.comments.len() as u32 {
        let Some(a) = of_comment(m, ctx.attachments_per_mille, index) else {
            continue;
        };
        let topic = &m.topics[m.comments[index as usize].topic as usize];
        let group = &m.groups[topic.group as usize];
        let key = object_key(ctx.assoc_ids[group.assoc as usize], a.id);
        let t = ctx.templates.get(a.template);
        if let Some(thumb) = &t.thumb {
            puts.push((format!("{key}.p"), t.bytes.clone(), samples::JPEG));
            puts.push((format!("{key}.t"), thumb.clone(), samples::JPEG));
        }
        puts.push((key, t.bytes.clone(), t.content_type));
    }
    let n = puts.len() as u64;
    let mut results = futures_util::stream::iter(puts)
        .map(|(key, bytes, content_type)| async move {
            store
                .put_bytes(&key, bytes, content_type)
                .await
                .with_context(|| format!("storing {key}"))
        })
        .buffer_unordered(PUTS_AT_ONCE);
    while let Some(r) = results.next().await {
        r?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::scale::Sizes;

    #[test]
    fn a_share_of_live_comments_carry_an_attachment_the_same_every_time() {
        let sizes = Sizes {
            associations: 2,
            people: 80,
            patient_groups: 60,
            general_groups: 4,
            comments: 3000,
            footprints: 12_000,
            crowded_groups: 0,
            heavy_readers: 0,
            heavy_topics_per_group: 5,
            attachments_per_mille: 20,
            register_first: 0,
        };
        let m = Model::build(5, sizes, sizes.footprints);
        let with: Vec<(u32, Attachment)> = (0..m.comments.len() as u32)
            .filter_map(|i| of_comment(&m, 20, i).map(|a| (i, a)))
            .collect();
        let share = with.len() as f64 / m.comments.len() as f64;
        assert!((0.01..0.03).contains(&share), "{share}");
        for (i, a) in &with {
            let c = &m.comments[*i as usize];
            assert_eq!(c.flags & DELETED, 0);
            assert!(a.uploaded_t < c.t);
            assert_eq!(of_comment(&m, 20, *i).unwrap().id, a.id);
        }
        assert!(with.iter().any(|(_, a)| a.kind == "image"));
        assert!(with.iter().any(|(_, a)| a.kind == "other"));
        assert!((0..m.comments.len() as u32).all(|i| of_comment(&m, 0, i).is_none()));
    }

    #[test]
    fn photos_have_thumbnails_and_documents_do_not() {
        let t = Templates::build(1).unwrap();
        for i in 0..PHOTOS {
            let p = t.get(i);
            assert_eq!(p.content_type, samples::JPEG);
            assert!(p.thumb.is_some() && p.width.is_some());
        }
        for i in PHOTOS..PHOTOS + DOCUMENT_FILLERS.len() {
            let d = t.get(i);
            assert_eq!(d.content_type, samples::PDF);
            assert!(d.thumb.is_none() && d.size() > 30_000);
        }
    }
}
