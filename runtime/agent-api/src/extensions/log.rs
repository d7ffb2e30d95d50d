//! The `log` extension: `collect_system_logs` (sync) answers
//! `{"system_logs": "<base64 of a gzipped tar>"}` built from what the system
//! backend collects (journal/dmesg/command outputs on a real machine, files
//! under the hardware root on a simulated one), capped in size.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::engine::{handler, CommandDef, CommandFuture, Ctx, Extension, Mode, Param};
use crate::errors::AgentError;
use crate::system_actions::LogMember;

const NO_PARAMS: &[Param] = &[];

/// The extension's commands.
pub fn extension() -> Extension {
    Extension {
        name: "log",
        class: "LogExtension",
        commands: vec![CommandDef {
            name: "collect_system_logs",
            mode: Mode::Sync,
            params: NO_PARAMS,
            extra_kwargs: false,
            validator: None,
            handler: handler(collect_system_logs),
        }],
        native_steps: Vec::new(),
    }
}

fn collect_system_logs(ctx: Ctx, _params: Map<String, Value>) -> CommandFuture {
    Box::pin(async move {
        let system = ctx.state.system();
        let cap = ctx.state.config().max_log_bytes;
        let blob = ctx
            .blocking(move || {
                let members = system.collect_logs(cap);
                tarball(&members).map_err(|e| {
                    AgentError::command_execution(format!("could not pack system logs: {e}"))
                })
            })
            .await?;
        Ok(json!({"system_logs": base64::engine::general_purpose::STANDARD.encode(blob)}))
    })
}

/// A gzip-compressed tar of `members`.
pub fn tarball(members: &[LogMember]) -> std::io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mtime = crate::unix_now() as u64;
    for m in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(m.data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, &m.name, m.data.as_slice())?;
    }
    tar.into_inner()?.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn tarball_round_trips() {
        let members = vec![
            LogMember {
                name: "proc/cmdline".into(),
                data: b"ipa-debug=1".to_vec(),
            },
            LogMember {
                name: "var/log/messages".into(),
                data: b"boot".to_vec(),
            },
        ];
        let blob = tarball(&members).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob.as_slice()));
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut s = String::new();
            entry.read_to_string(&mut s).unwrap();
            seen.push((entry.path().unwrap().display().to_string(), s));
        }
        assert_eq!(
            seen,
            vec![
                ("proc/cmdline".to_string(), "ipa-debug=1".to_string()),
                ("var/log/messages".to_string(), "boot".to_string())
            ]
        );
    }
}
