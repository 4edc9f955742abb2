//! Per-field annotations shared by the printers: names for ESR classes,
//! PSCI functions and PSCI error codes, and value rendering by display hint.

use porwatch_trace::{Event, FieldSpec, FieldValue, Hint};

use crate::{esr, psci};

/// Extra information about one field value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Annotation {
    /// Text shown in parentheses after the value in text output.
    pub text: String,
    /// Extra members of the JSON object (key, string value), written right
    /// after the field: `ec` and `esr_detail` for `esr`, `function_name`,
    /// `result_name`, `field_name` (`id_field`).
    pub json: Vec<(&'static str, String)>,
}

/// Vector slots by kind: slot % 4 (sync, IRQ, FIQ, SError).
const SLOT_IRQ: u64 = 1;
const SLOT_FIQ: u64 = 2;
const SLOTS_PER_GROUP: u64 = 4;

/// Annotation of field `field` of record `event`, if any.
pub fn annotate(event: &Event<'_>, field: &str, value: FieldValue<'_>) -> Option<Annotation> {
    // An IRQ or FIQ does not write ESR_EL1: an exc_entry's `esr` then holds
    // whatever an earlier exception left, and decoding it would mislead.
    // (An SError does write it, EC 0x2F.)
    if let (Event::ExcEntry { vector, .. }, "esr") = (event, field) {
        let kind = match vector % SLOTS_PER_GROUP {
            SLOT_IRQ => Some("IRQ"),
            SLOT_FIQ => Some("FIQ"),
            _ => None,
        };
        if let Some(kind) = kind {
            return Some(Annotation {
                text: format!("stale: an {kind} does not write ESR_EL1"),
                json: vec![("esr_stale", kind.to_string())],
            });
        }
    }
    annotate_kind(event.kind_name(), field, value)
}

/// Annotation of field `field` of a `kind` record, whatever its other fields.
fn annotate_kind(kind: &str, field: &str, value: FieldValue<'_>) -> Option<Annotation> {
    match (kind, field, value) {
        (_, "esr", FieldValue::U64(v)) => {
            let mut json = vec![("ec", esr::ec_label(v))];
            if let Some(d) = esr::detail(v) {
                json.push(("esr_detail", d));
            }
            Some(Annotation { text: esr::describe(v), json })
        }
        ("psci", "function", FieldValue::U64(v)) => psci::function_name(v)
            .map(|n| Annotation { text: n.to_string(), json: vec![("function_name", n.to_string())] }),
        ("psci", "result", FieldValue::I64(v)) => psci::error_name(v)
            .map(|n| Annotation { text: n.to_string(), json: vec![("result_name", n.to_string())] }),
        ("id_field", "field", FieldValue::U64(v)) => {
            let mut name = String::new();
            porwatch_monitor::idregs::describe(v, &mut name).ok()?;
            Some(Annotation { text: name.clone(), json: vec![("field_name", name)] })
        }
        _ => None,
    }
}

/// Name of an enum value, or `unknown(N)` if the table has none.
pub fn enum_text(names: &'static [&'static str], v: u64) -> String {
    match Hint::Enum(names).enum_name(v) {
        Some(n) => n.to_string(),
        None => format!("unknown({v})"),
    }
}

/// Lower-case hex digits of `bytes`.
pub fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An address list as `[0x1,0x2]`, each address followed by ` <sym>` when
/// `sym` names it.
pub fn addrs_text(value: FieldValue<'_>, sym: impl Fn(u64) -> Option<String>) -> String {
    let items: Vec<String> = value
        .addrs()
        .map(|a| match sym(a) {
            Some(t) => format!("{a:#x} {t}"),
            None => format!("{a:#x}"),
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// A field value as text, following the spec's display hint: `0x1f`, `42`,
/// `emulated`, `"message"` (quoted, escaped), `dead01`.
pub fn value_text(spec: &FieldSpec, value: FieldValue<'_>) -> String {
    match (value, spec.hint) {
        (FieldValue::U64(v), Hint::Hex) => format!("{v:#x}"),
        (FieldValue::U64(v), Hint::Enum(names)) => enum_text(names, v),
        (FieldValue::U64(v), _) => v.to_string(),
        (FieldValue::I64(v), Hint::Hex) => format!("{v:#x}"),
        (FieldValue::I64(v), _) => v.to_string(),
        (FieldValue::Bytes(b), Hint::HexBytes) => hex_bytes(b),
        (FieldValue::Bytes(_), Hint::Addrs) => addrs_text(value, |_| None),
        (FieldValue::Bytes(b), _) => format!("{:?}", String::from_utf8_lossy(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use porwatch_trace::{Event, UNKNOWN_RAW};

    #[test]
    fn annotations() {
        let annotate = annotate_kind;
        let a = annotate("trap", "esr", FieldValue::U64(0x5a00_0000)).unwrap();
        assert_eq!(a.text, "HVC64");
        assert_eq!(a.json, [("ec", "HVC64".to_string())]);
        let a = annotate("trap", "esr", FieldValue::U64(0x6238_e865)).unwrap();
        assert_eq!(a.text, "SYS64 MRS x3, POR_EL0");
        assert_eq!(a.json[1], ("esr_detail", "MRS x3, POR_EL0".to_string()));
        let a = annotate("psci", "function", FieldValue::U64(0x8400_0008)).unwrap();
        assert_eq!(a.text, "SYSTEM_OFF");
        assert_eq!(annotate("psci", "function", FieldValue::U64(7)), None);
        let a = annotate("psci", "result", FieldValue::I64(-1)).unwrap();
        assert_eq!(a.json, [("result_name", "NOT_SUPPORTED".to_string())]);
        assert_eq!(annotate("psci", "result", FieldValue::I64(0x10001)), None);
        assert_eq!(annotate("trap", "elr", FieldValue::U64(0)), None);
        let gcs = porwatch_monitor::idregs::pack(porwatch_monitor::sysreg::ID_AA64PFR1_EL1, 44);
        let a = annotate("id_field", "field", FieldValue::U64(gcs)).unwrap();
        assert_eq!(a.text, "ID_AA64PFR1_EL1.GCS [47:44]");
        assert_eq!(a.json, [("field_name", "ID_AA64PFR1_EL1.GCS [47:44]".to_string())]);
        // The hypervisor writes monitor's reason codes; the trace names them.
        assert_eq!(porwatch_monitor::idregs::Reason::NAMES, porwatch_trace::ID_REASON_NAMES);
    }

    #[test]
    fn stale_esr_of_an_irq_entry_is_not_decoded() {
        let entry =
            |vector| Event::ExcEntry { vector, esr: 0x5600_0001, elr: 0, spsr: 0, far: 0, por: 0, depth: 0 };
        // irq_el1h (slot 5), fiq_el0_64 (slot 10): stale.
        let a = annotate(&entry(5), "esr", FieldValue::U64(0x5600_0001)).unwrap();
        assert_eq!(a.text, "stale: an IRQ does not write ESR_EL1");
        assert_eq!(a.json, [("esr_stale", "IRQ".to_string())]);
        assert_eq!(
            annotate(&entry(10), "esr", FieldValue::U64(0)).unwrap().text,
            "stale: an FIQ does not write ESR_EL1"
        );
        // sync_el1h (slot 4) and serror_el1h (slot 7) are decoded.
        assert_eq!(annotate(&entry(4), "esr", FieldValue::U64(0x5600_0001)).unwrap().text, "SVC64 #0x1");
        assert_eq!(annotate(&entry(7), "esr", FieldValue::U64(0xbe00_0000)).unwrap().json[0].0, "ec");
        // Other fields of the record are untouched.
        assert_eq!(annotate(&entry(5), "elr", FieldValue::U64(0)), None);
    }

    #[test]
    fn values_by_hint() {
        let e = Event::Trap { esr: 0x5a00_0000, elr: 0x4008_0000, outcome: 9 };
        let texts: Vec<String> = e.fields().map(|(s, v)| value_text(s, v)).collect();
        assert_eq!(texts, ["0x5a000000", "0x40080000", "unknown(9)"]);
        let e = Event::Panic { message: b"a \"b\"\n\xff" };
        let (s, v) = e.fields().next().unwrap();
        assert_eq!(value_text(s, v), "\"a \\\"b\\\"\\n\u{fffd}\"");
        assert_eq!(value_text(&UNKNOWN_RAW, FieldValue::Bytes(&[0xde, 0x01])), "de01");
        let frames = [0x1000u64, 0xffff_8000_8000_0010].map(u64::to_le_bytes).concat();
        let e = Event::CallTrace { of: 0, ref_seq: 0, pc: 0, lr: 0, fp: 0, end: 0, frames: &frames };
        let (s, v) = e.fields().last().unwrap();
        assert_eq!(value_text(s, v), "[0x1000,0xffff800080000010]");
        assert_eq!(
            addrs_text(v, |a| (a == 0x1000).then(|| "<f+0x0/0x4>".into())),
            "[0x1000 <f+0x0/0x4>,0xffff800080000010]"
        );
        let e = Event::Psci { function: 0, arg0: 0, arg1: 0, arg2: 0, result: -9, conduit: 0 };
        assert_eq!(value_text(e.fields().nth(4).unwrap().0, FieldValue::I64(-9)), "-9");
    }
}
