//! Config drive decoding (IPA `partition_utils.get_configdrive`): an inline
//! string or an `http(s)://` URL; base64 of a gzipped image, or (from a URL
//! only) the raw image bytes.

use std::io::Write;
use std::path::Path;

use base64::Engine as _;

use crate::error::ImageError;
use crate::WriteOptions;

/// Upper bound for a fetched config drive body (Ironic caps them far lower).
const MAX_BODY: usize = 256 << 20;

fn err(message: impl Into<String>) -> ImageError {
    ImageError::ConfigDrive {
        message: message.into(),
    }
}

/// Decodes `value` into the file `dest` (created/truncated); returns its
/// size in bytes. The partition size is `ceil(bytes / 1 MiB)`.
pub async fn write_configdrive(
    value: &str,
    opts: &WriteOptions,
    dest: &Path,
) -> Result<u64, ImageError> {
    let lower = value.trim_start().to_ascii_lowercase();
    let (data, from_url) = if lower.starts_with("http://") || lower.starts_with("https://") {
        (fetch(value.trim(), opts).await?, true)
    } else {
        (value.as_bytes().to_vec(), false)
    };
    // Python's b64decode is non-strict about line breaks and whitespace.
    let compact: Vec<u8> = data
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let decoded = match base64::engine::general_purpose::STANDARD.decode(&compact) {
        Ok(d) => Some(d),
        Err(_) if from_url => None,
        Err(e) => return Err(err(format!("config drive is not valid base64: {e}"))),
    };
    let mut out = std::fs::File::create(dest)
        .map_err(|e| err(format!("creating {}: {e}", dest.display())))?;
    let written = match decoded {
        Some(gz) => {
            let mut dec = flate2::read::GzDecoder::new(gz.as_slice());
            std::io::copy(&mut dec, &mut out)
                .map_err(|e| err(format!("config drive is not gzip data: {e}")))?
        }
        None => {
            // Raw ISO/VFAT image served as is.
            out.write_all(&data)
                .map_err(|e| err(format!("writing {}: {e}", dest.display())))?;
            data.len() as u64
        }
    };
    out.sync_all()
        .map_err(|e| err(format!("syncing {}: {e}", dest.display())))?;
    Ok(written)
}

async fn fetch(url: &str, opts: &WriteOptions) -> Result<Vec<u8>, ImageError> {
    let tls = match &opts.tls {
        Some(c) => c.as_ref().clone(),
        None => crate::http::default_tls_config()?,
    };
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(opts.connect_timeout)
        .read_timeout(opts.connect_timeout)
        .build()
        .map_err(|e| err(format!("HTTP client: {e}")))?;
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| err(format!("fetching {url}: {e}")))?;
    if resp.status().as_u16() >= 400 {
        return Err(err(format!("fetching {url}: HTTP {}", resp.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| err(format!("reading {url}: {e}")))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BODY {
            return Err(err(format!(
                "config drive at {url} is larger than {MAX_BODY} bytes"
            )));
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;

    #[tokio::test]
    async fn inline_gzip_base64() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&vec![7u8; 3 << 20]).expect("gz");
        let b64 = base64::engine::general_purpose::STANDARD.encode(enc.finish().expect("gz"));
        // wrapped at 76 columns like Ironic's encoder output
        let wrapped: String = b64
            .as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8_lossy(c).into_owned() + "\n")
            .collect();
        let dest = dir.path().join("cd");
        let n = write_configdrive(&wrapped, &WriteOptions::default(), &dest)
            .await
            .expect("decode");
        assert_eq!(n, 3 << 20);
        assert_eq!(std::fs::read(&dest).expect("read"), vec![7u8; 3 << 20]);
        let bad = write_configdrive("@@not base64@@", &WriteOptions::default(), &dest).await;
        assert!(matches!(bad, Err(ImageError::ConfigDrive { .. })));
        let not_gz = base64::engine::general_purpose::STANDARD.encode(b"plain");
        assert!(write_configdrive(&not_gz, &WriteOptions::default(), &dest)
            .await
            .is_err());
    }
}
