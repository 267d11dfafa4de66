//! Per-request charges in the ledger, stored a batch at a time.
//!
//! The batched writer commits, per account and flush, one debit transaction
//! for the sum of its requests' charges. Each request's part of it (request
//! id, amount, time) is kept beside that debit in one append-only row of
//! `usage_batches`, its records packed in a compact binary form: a row per
//! account per flush instead of a row per request, so a paid request costs
//! the database a few dozen bytes, not a B-tree insert (docs/BENCHMARKS.md).
//! `faregate ledger verify` unpacks every row and checks it against its
//! debit. Records written before schema version 5 stay in `usage_records`,
//! one row each, and are read and verified with the rest.
//!
//! Payload, version 1: the byte `1`, then per record the reference's length
//! (LEB128) and bytes, the amount (LEB128, never negative), and the time as
//! a zigzag LEB128 difference from the record before (the first from 0).

use crate::UsageRecord;

/// Records in one row at most; a larger batch takes several rows.
pub(crate) const MAX_PER_ROW: usize = 1 << 20;

/// Cursors of packed records start here, above any `usage_records` row's
/// sequence number: `BASE + (row seq << 20) + index in the row`.
pub(crate) const CURSOR_BASE: i64 = 1 << 62;

const VERSION: u8 = 1;

/// The cursor of record `index` of row `seq`.
pub(crate) fn cursor(seq: i64, index: usize) -> i64 {
    CURSOR_BASE + (seq << 20) + index as i64
}

/// For a `before` cursor: the highest row seq that may hold a record
/// before it, and how many of that row's records do; `None` when `before`
/// lies below every packed record.
pub(crate) fn rows_before(before: Option<i64>) -> Option<(i64, usize)> {
    match before {
        None => Some((i64::MAX, usize::MAX)),
        Some(b) if b > CURSOR_BASE => {
            let rel = b - CURSOR_BASE;
            Some((rel >> 20, (rel & ((1 << 20) - 1)) as usize))
        }
        Some(_) => None,
    }
}

/// Packs records (of one transaction) into a payload.
pub(crate) fn encode<'a>(records: impl IntoIterator<Item = &'a UsageRecord>) -> Vec<u8> {
    let mut out = vec![VERSION];
    let mut last = 0i64;
    for r in records {
        leb(&mut out, r.reference.len() as u64);
        out.extend_from_slice(r.reference.as_bytes());
        leb(&mut out, u64::try_from(r.amount).unwrap_or(0));
        leb(&mut out, zigzag(r.created_at.wrapping_sub(last)));
        last = r.created_at;
    }
    out
}

/// Unpacks a payload of transaction `transaction_id`; `None` when it is
/// not one this code wrote.
pub(crate) fn decode(transaction_id: &str, payload: &[u8]) -> Option<Vec<UsageRecord>> {
    let (&version, mut rest) = payload.split_first()?;
    if version != VERSION {
        return None;
    }
    let mut out = Vec::new();
    let mut last = 0i64;
    while !rest.is_empty() {
        let len = usize::try_from(read_leb(&mut rest)?).ok()?;
        let (reference, tail) = rest.split_at_checked(len)?;
        rest = tail;
        let amount = i64::try_from(read_leb(&mut rest)?).ok()?;
        last = last.wrapping_add(unzigzag(read_leb(&mut rest)?));
        out.push(UsageRecord {
            transaction_id: transaction_id.to_owned(),
            reference: String::from_utf8(reference.to_vec()).ok()?,
            amount,
            created_at: last,
        });
    }
    Some(out)
}

fn leb(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn read_leb(input: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = input.split_first()?;
        *input = rest;
        n |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(reference: &str, amount: i64, created_at: i64) -> UsageRecord {
        UsageRecord {
            transaction_id: "tx_1".into(),
            reference: reference.into(),
            amount,
            created_at,
        }
    }

    #[test]
    fn records_round_trip() {
        let records = vec![
            record("0123456789abcdef0123456789abcdef", 1, 1_796_000_000_000),
            record("", 0, 1_796_000_000_000),
            record(&"r".repeat(300), i64::MAX, 1_795_999_999_999),
            record("é-id", 127, -5),
            record("x", 128, i64::MIN),
        ];
        let payload = encode(&records);
        assert_eq!(decode("tx_1", &payload), Some(records));
        assert_eq!(decode("tx_1", &encode(&[])), Some(Vec::new()));
    }

    #[test]
    fn a_typical_record_takes_a_few_dozen_bytes() {
        let records: Vec<_> = (0..100)
            .map(|i| {
                record(
                    "0123456789abcdef0123456789abcdef",
                    1000,
                    1_796_000_000_000 + i,
                )
            })
            .collect();
        assert!(encode(&records).len() < 100 * 40);
    }

    #[test]
    fn damaged_payloads_are_refused() {
        let payload = encode(&[record("abc", 5, 9)]);
        assert_eq!(decode("t", &[]), None);
        assert_eq!(decode("t", &[2]), None);
        for cut in 2..payload.len() {
            assert_eq!(decode("t", &payload[..cut]), None, "cut at {cut}");
        }
        assert_eq!(
            decode(
                "t",
                &[
                    1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
                ]
            ),
            None
        );
    }

    #[test]
    fn cursors_order_rows_then_records_above_the_old_table() {
        assert!(cursor(1, 0) > CURSOR_BASE);
        assert!(cursor(2, 0) > cursor(1, MAX_PER_ROW - 1));
        assert_eq!(rows_before(Some(cursor(7, 3))), Some((7, 3)));
        assert_eq!(rows_before(Some(12)), None);
        assert_eq!(rows_before(None), Some((i64::MAX, usize::MAX)));
    }
}
