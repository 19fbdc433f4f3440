//! Who acts, in which association, from where: the one value every association-scoped
//! operation takes. Entry points build it once per request (GraphQL from the routed request, the
//! web from the page's place); the operations never take the three parts separately, so none can
//! pair a person with an association or a request that is not theirs.

use crate::audit::RequestMeta;
use crate::sessions::Viewer;
use crate::Tenant;

#[derive(Clone, Copy)]
pub struct Actor<'a> {
    pub(crate) viewer: &'a Viewer,
    pub(crate) tenant: &'a Tenant,
    pub(crate) meta: &'a RequestMeta,
}

impl<'a> Actor<'a> {
    pub fn new(viewer: &'a Viewer, tenant: &'a Tenant, meta: &'a RequestMeta) -> Self {
        Self {
            viewer,
            tenant,
            meta,
        }
    }

    pub fn viewer(&self) -> &'a Viewer {
        self.viewer
    }

    pub fn tenant(&self) -> &'a Tenant {
        self.tenant
    }

    pub fn meta(&self) -> &'a RequestMeta {
        self.meta
    }
}
