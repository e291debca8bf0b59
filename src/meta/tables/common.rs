//! What the registry's tables share: postcard records under a key, and the
//! key range of one entity's rows.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Result;
use crate::meta::records::{decode_postcard, encode_postcard};
use crate::meta::registry_records::EntityId;
use crate::meta::{Batch, Cf, Meta};

/// Reads and decodes the postcard record under `key`; `what` names it in
/// a decode error.
pub(super) fn get_postcard<T: DeserializeOwned>(
    meta: &Meta,
    cf: Cf,
    key: &[u8],
    what: &'static str,
) -> Result<Option<T>> {
    meta.with(cf, key, |b| decode_postcard(what, b))
}

/// Adds a postcard record to a batch.
pub(super) fn put_postcard<T: Serialize>(
    batch: &mut Batch,
    cf: Cf,
    key: impl Into<Vec<u8>>,
    v: &T,
) {
    batch.put(cf, key, encode_postcard(v));
}

/// The first key after every key that starts with `id` (keys of one
/// entity's rows are `id ‖ …`): the id one past it in byte order, or 17
/// bytes of 0xff for the last id.
pub(super) fn past_id(id: &EntityId) -> Vec<u8> {
    let mut next = id.0;
    for b in next.iter_mut().rev() {
        let (v, carry) = b.overflowing_add(1);
        *b = v;
        if !carry {
            break;
        }
    }
    if next == [0; 16] {
        vec![0xff; 17]
    } else {
        next.to_vec()
    }
}

/// Deletes every row of entity `id` in `cf`.
pub(super) fn delete_rows_of(batch: &mut Batch, cf: Cf, id: &EntityId) {
    batch.delete_range(cf, id.0.to_vec(), past_id(id));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_id_is_the_first_key_after_the_rows_of_an_id() {
        let mut id = [0u8; 16];
        id[15] = 7;
        let mut next = id;
        next[15] = 8;
        assert_eq!(past_id(&EntityId(id)), next.to_vec());
        // A carry runs up through trailing 0xff bytes.
        id[14..].copy_from_slice(&[3, 0xff]);
        next[14..].copy_from_slice(&[4, 0]);
        assert_eq!(past_id(&EntityId(id)), next.to_vec());
        // The last id has no successor of 16 bytes: every key of its rows
        // (the id, then at least one byte) sorts before 17 bytes of 0xff.
        let last = EntityId([0xff; 16]);
        assert_eq!(past_id(&last), vec![0xff; 17]);
        assert!([&last.0[..], &[0xfe]].concat() < past_id(&last));
    }
}
