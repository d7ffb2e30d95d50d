//! Python's keyword-argument binding, as IPA's command methods reject bad
//! parameters (`TypeError`), with Python's exact wording.

use serde_json::{Map, Value};

use super::CommandDef;

/// Python's keyword-argument binding check, with Python's wording:
/// `Cls.fn() got an unexpected keyword argument 'x'` (checked first) or
/// `Cls.fn() missing 2 required positional arguments: 'a' and 'b'`.
pub(super) fn check_params(
    class: &str,
    cmd: &CommandDef,
    params: &Map<String, Value>,
) -> Result<(), String> {
    let qualname = format!("{class}.{}", cmd.name);
    if !cmd.extra_kwargs {
        if let Some(k) = params
            .keys()
            .find(|k| !cmd.params.iter().any(|p| p.name == k.as_str()))
        {
            return Err(format!(
                "{qualname}() got an unexpected keyword argument '{k}'"
            ));
        }
    }
    let missing: Vec<String> = cmd
        .params
        .iter()
        .filter(|p| p.required && !params.contains_key(p.name))
        .map(|p| format!("'{}'", p.name))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = match missing.len() {
        1 => missing[0].clone(),
        2 => format!("{} and {}", missing[0], missing[1]),
        n => format!("{}, and {}", missing[..n - 1].join(", "), missing[n - 1]),
    };
    let plural = if missing.len() == 1 { "" } else { "s" };
    Err(format!(
        "{qualname}() missing {} required positional argument{plural}: {list}",
        missing.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{handler, opt, req, CommandFuture, Ctx, Mode, Param};
    use serde_json::json;

    fn noop(_: Ctx, _: Map<String, Value>) -> CommandFuture {
        Box::pin(async { Ok(Value::Null) })
    }

    fn def(params: &'static [Param], extra: bool) -> CommandDef {
        CommandDef {
            name: "execute_clean_step",
            mode: Mode::Sync,
            params,
            extra_kwargs: extra,
            validator: None,
            handler: handler(noop),
        }
    }

    #[test]
    fn python_type_errors() {
        const P: &[Param] = &[req("step"), req("node"), req("ports"), opt("clean_version")];
        let d = def(P, false);
        let m = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            check_params("CleanExtension", &d, &m(json!({"node": {}, "ports": []}))),
            Err("CleanExtension.execute_clean_step() missing 1 required positional argument: 'step'".into())
        );
        assert_eq!(
            check_params("CleanExtension", &d, &m(json!({"node": {}}))),
            Err("CleanExtension.execute_clean_step() missing 2 required positional arguments: 'step' and 'ports'".into())
        );
        assert_eq!(
            check_params("CleanExtension", &d, &m(json!({}))),
            Err("CleanExtension.execute_clean_step() missing 3 required positional arguments: 'step', 'node', and 'ports'".into())
        );
        assert_eq!(
            check_params("CleanExtension", &d, &m(json!({"x": 1}))),
            Err(
                "CleanExtension.execute_clean_step() got an unexpected keyword argument 'x'".into()
            )
        );
        let d = def(P, true);
        assert!(check_params(
            "CleanExtension",
            &d,
            &m(json!({"x": 1, "step": {}, "node": {}, "ports": []}))
        )
        .is_ok());
    }
}
