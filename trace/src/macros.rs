//! The event-table macro: one table (in `events.rs`) generates the
//! [`crate::Event`] enum, its encoder and decoder, kind codes and names,
//! the field iterator and the [`crate::KINDS`] specs with display hints.

/// Rust type of a field of wire type `u64` / `i64` / `bytes`.
macro_rules! __field_ty {
    ($lt:lifetime, u64) => {
        u64
    };
    ($lt:lifetime, u64_appended) => {
        u64
    };
    ($lt:lifetime, i64) => {
        i64
    };
    ($lt:lifetime, bytes) => {
        &$lt[u8]
    };
}

/// [`crate::FieldType`] of a wire type.
macro_rules! __field_type {
    (u64) => {
        $crate::FieldType::U64
    };
    (u64_appended) => {
        $crate::FieldType::U64
    };
    (i64) => {
        $crate::FieldType::I64
    };
    (bytes) => {
        $crate::FieldType::Bytes
    };
}

/// [`crate::FieldValue`] of a field binding.
macro_rules! __field_value {
    (u64, $v:expr) => {
        $crate::FieldValue::U64($v)
    };
    (u64_appended, $v:expr) => {
        $crate::FieldValue::U64($v)
    };
    (i64, $v:expr) => {
        $crate::FieldValue::I64($v)
    };
    (bytes, $v:expr) => {
        $crate::FieldValue::Bytes($v)
    };
}

/// Writes one field (inside a fn returning `Option`).
macro_rules! __put_field {
    ($w:ident, u64, $v:expr) => {
        $w.u64($v)?
    };
    ($w:ident, u64_appended, $v:expr) => {
        $w.u64($v)?
    };
    ($w:ident, i64, $v:expr) => {
        $w.i64($v)?
    };
    ($w:ident, bytes, $v:expr) => {
        $w.bytes($v)?
    };
}

/// Reads one field (inside a fn returning `Result<_, DecodeError>`).
macro_rules! __get_field {
    ($r:ident, u64, $name:expr) => {
        $r.u64($name)?
    };
    // A field appended to a kind after its first release: a record from an
    // older writer ends before it (its CRC is valid), and it reads as 0.
    ($r:ident, u64_appended, $name:expr) => {
        if $r.rest().is_empty() {
            0
        } else {
            $r.u64($name)?
        }
    };
    ($r:ident, i64, $name:expr) => {
        $r.i64($name)?
    };
    ($r:ident, bytes, $name:expr) => {
        $r.bytes($name)?
    };
}

/// The event table. Syntax, per kind:
///
/// ```text
/// /// kind doc
/// CODE snake_name => VariantName {
///     /// field doc
///     field: u64|i64|bytes|u64_appended = Hex|Dec|Text|HexBytes|Enum(NAMES),
/// }
/// ```
///
/// Codes must be strictly increasing (checked at compile time). New fields
/// may only be appended to a kind, as `u64_appended` (a u64 that reads as 0
/// from an older writer's record, which ends before it); existing codes and
/// fields never change.
macro_rules! define_events {
    (
        $(
            $(#[doc = $doc:literal])*
            $code:literal $name:ident => $Variant:ident {
                $(
                    $(#[doc = $fdoc:literal])*
                    $field:ident : $ty:ident = $hint:ident $(($table:expr))?
                ),* $(,)?
            }
        )*
    ) => {
        /// A trace event: one variant per record kind (see [`KINDS`]), plus
        /// [`Event::Unknown`] for kinds this build does not know.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Event<'a> {
            $(
                $(#[doc = $doc])*
                $Variant {
                    $(
                        $(#[doc = $fdoc])*
                        $field: __field_ty!('a, $ty),
                    )*
                },
            )*
            /// A record whose kind code this decoder does not know; `raw`
            /// holds the bytes after `seq` and `ts`. Encoding it writes
            /// `raw` back verbatim.
            Unknown { kind: u8, raw: &'a [u8] },
        }

        /// Every known record kind, in kind-code order.
        pub static KINDS: &[KindSpec] = &[
            $(
                KindSpec {
                    code: $code,
                    name: stringify!($name),
                    doc: &[$($doc),*],
                    fields: &[
                        $(
                            FieldSpec {
                                name: stringify!($field),
                                ty: __field_type!($ty),
                                hint: Hint::$hint $(($table))?,
                                doc: &[$($fdoc),*],
                            },
                        )*
                    ],
                },
            )*
        ];

        /// Largest number of fields of any known kind.
        pub const MAX_FIELDS: usize = {
            let mut max = 1; // Event::Unknown has one pseudo-field
            $(
                let names: &[&str] = &[$(stringify!($field)),*];
                if names.len() > max {
                    max = names.len();
                }
            )*
            max
        };

        const _: () = {
            let codes: &[u8] = &[$($code),*];
            let mut i = 1;
            while i < codes.len() {
                assert!(codes[i - 1] < codes[i], "kind codes must be strictly increasing");
                i += 1;
            }
        };

        impl<'a> Event<'a> {
            /// Kind code on the wire.
            pub const fn kind_code(&self) -> u8 {
                match *self {
                    $( Event::$Variant { .. } => $code, )*
                    Event::Unknown { kind, .. } => kind,
                }
            }

            /// snake_case kind name (`"unknown"` for [`Event::Unknown`]).
            pub const fn kind_name(&self) -> &'static str {
                match *self {
                    $( Event::$Variant { .. } => stringify!($name), )*
                    Event::Unknown { .. } => "unknown",
                }
            }

            /// Static description of this event's kind (`None` if unknown).
            pub fn spec(&self) -> Option<&'static KindSpec> {
                match *self {
                    Event::Unknown { .. } => None,
                    _ => kind_spec(self.kind_code()),
                }
            }

            /// The fields, in wire order, with their specs (display hints).
            /// [`Event::Unknown`] yields one `raw` bytes field.
            pub fn fields(&self) -> Fields<'a> {
                match *self {
                    $(
                        Event::$Variant { $($field),* } => {
                            let specs = match kind_spec($code) {
                                Some(k) => k.fields,
                                None => &[],
                            };
                            #[allow(unused_mut)]
                            let mut f = Fields::new(specs);
                            $( f.push(__field_value!($ty, $field)); )*
                            f
                        }
                    )*
                    Event::Unknown { raw, .. } => {
                        let mut f = Fields::new(core::slice::from_ref(&UNKNOWN_RAW));
                        f.push(FieldValue::Bytes(raw));
                        f
                    }
                }
            }

            /// Value of the field called `name`, if this event has one.
            pub fn field(&self, name: &str) -> Option<FieldValue<'a>> {
                self.fields().find(|(s, _)| s.name == name).map(|(_, v)| v)
            }

            /// Writes the fields (not kind/seq/ts).
            pub(crate) fn encode_fields(&self, w: &mut Writer<'_>) -> Option<()> {
                match *self {
                    $(
                        Event::$Variant { $($field),* } => {
                            $( __put_field!(w, $ty, $field); )*
                        }
                    )*
                    Event::Unknown { raw, .. } => w.raw(raw)?,
                }
                Some(())
            }

            /// Reads the fields of kind `kind`; bytes after the known
            /// fields are ignored (newer writers append fields).
            pub(crate) fn decode_fields(kind: u8, r: &mut Reader<'a>) -> Result<Self, DecodeError> {
                match kind {
                    $(
                        $code => {
                            $( let $field = __get_field!(r, $ty, stringify!($field)); )*
                            Ok(Event::$Variant { $($field),* })
                        }
                    )*
                    _ => Ok(Event::Unknown { kind, raw: r.rest() }),
                }
            }
        }
    };
}

/// A value enumeration used by `Enum` fields: a `#[repr(u8)]` enum for the
/// writer, plus a dense name table (value `i` has name `NAMES[i]`) for the
/// decoder. Values must be 0, 1, 2, ... in order (checked at compile time).
macro_rules! value_enum {
    (
        $(#[doc = $doc:literal])*
        pub enum $Name:ident, names $NAMES:ident {
            $( $(#[doc = $vdoc:literal])* $Variant:ident = $val:literal => $s:literal ),* $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u8)]
        pub enum $Name {
            $( $(#[doc = $vdoc])* $Variant = $val, )*
        }

        #[doc = concat!("Names of the [`", stringify!($Name), "`] values, indexed by value.")]
        pub const $NAMES: &[&str] = &[$($s),*];

        const _: () = {
            let values: &[u8] = &[$($val),*];
            let mut i = 0;
            while i < values.len() {
                assert!(values[i] as usize == i, "enum values must be 0, 1, 2, ...");
                i += 1;
            }
        };

        impl $Name {
            /// Value on the wire.
            pub const fn code(self) -> u64 {
                self as u64
            }

            /// snake_case name.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $Name::$Variant => $s, )*
                }
            }

            /// The variant with wire value `v`.
            pub const fn from_code(v: u64) -> Option<Self> {
                match v {
                    $( $val => Some($Name::$Variant), )*
                    _ => None,
                }
            }
        }

        impl From<$Name> for u64 {
            fn from(v: $Name) -> u64 {
                v.code()
            }
        }
    };
}
