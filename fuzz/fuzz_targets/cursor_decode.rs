//! Pagination cursors come back from clients: any text is refused cleanly or decodes to a
//! position that encodes back to a cursor for the same position.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portside_http::cursor;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = cursor::decode_id(text) {
        assert_eq!(cursor::decode_id(&cursor::encode_id(id)).ok(), Some(id));
    }
    if let Ok((at, id)) = cursor::decode_position('c', text) {
        let again = cursor::encode_position('c', at, id);
        assert_eq!(cursor::decode_position('c', &again).ok(), Some((at, id)));
    }
});
