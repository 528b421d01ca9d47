//! Every solarhub message and service as prost-reflect descriptors, decoded once from the set the
//! proto crate was built with: the HTTP gateway's dynamic messages and the JSON control keeps its
//! commands in both read them here.

use std::sync::LazyLock;

use prost_reflect::DescriptorPool;

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(solarhub_proto::FILE_DESCRIPTOR_SET)
        .expect("the proto crate's descriptor set decodes")
});

/// The descriptors (a cheap handle: clones share them).
pub fn pool() -> &'static DescriptorPool {
    &POOL
}
