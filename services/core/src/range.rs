//! One byte range of a file, from a `Range` header's value (RFC 9110, parsed by
//! `http-range-header`). The gateway's relay and the downloader's file streams answer ranges
//! the same way.

/// Nothing of the file is in the range asked for (answer 416 with `Content-Range: */len`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable;

/// What `value` (a `Range` header, if any) asks of a file of `total` bytes: `Ok(None)` for
/// the whole file (no header, a malformed one, or several ranges, which a server may
/// ignore), `Ok(Some((offset, length)))` for one range clamped to the file.
pub fn single(value: Option<&str>, total: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    let Some(value) = value else {
        return Ok(None);
    };
    let Ok(parsed) = http_range_header::parse_range_header(value) else {
        return Ok(None);
    };
    if parsed.len() != 1 {
        return Ok(None);
    }
    match parsed.validate(total) {
        // `end < total`, so the length cannot overflow.
        Ok(ranges) => Ok(ranges.first().map(|r| {
            (
                *r.start(),
                r.end().saturating_sub(*r.start()).saturating_add(1),
            )
        })),
        Err(http_range_header::RangeUnsatisfiableError::Unsatisfiable) => Err(Unsatisfiable),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_as_players_and_ffmpeg_send_them() {
        let r = |v: &str| single(Some(v), 100);
        assert_eq!(r("bytes=0-"), Ok(Some((0, 100))));
        assert_eq!(r("bytes=10-19"), Ok(Some((10, 10))));
        assert_eq!(r("bytes=-10"), Ok(Some((90, 10))));
        assert_eq!(r("bytes=90-1000"), Ok(Some((90, 10))));
        assert_eq!(r("bytes=0-18446744073709551615"), Ok(Some((0, 100))));
        assert_eq!(r("bytes=100-"), Err(Unsatisfiable));
        assert_eq!(r("bytes=-0"), Err(Unsatisfiable));
        assert_eq!(r("bytes=0-1,5-6"), Ok(None));
        assert_eq!(r("items=0-1"), Ok(None));
        assert_eq!(single(None, 100), Ok(None));
    }
}
