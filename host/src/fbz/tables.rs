//! Accessors for the engine's FlatBuffers tables, written by hand from the
//! slot numbers of the format spec (there is no schema to run `flatc` on).
//!
//! Each table type implements `flatbuffers::Verifiable`, naming the type of
//! every slot it reads; `flatbuffers::root` runs those verifiers over the
//! whole buffer (every offset and length bounds-checked, strings UTF-8)
//! before any accessor runs. The accessors then read exactly the slots, with
//! exactly the types, that were verified: that is the invariant that makes
//! their `unsafe` blocks sound, the same one `flatc`-generated code relies on.

use flatbuffers::{
    Follow, ForwardsUOffset, InvalidFlatbuffer, Table, VOffsetT, Vector, Verifiable, Verifier,
};

/// Byte offset in a vtable of field number `index`.
pub(super) const fn slot(index: VOffsetT) -> VOffsetT {
    4 + 2 * index
}

type Str<'a> = ForwardsUOffset<&'a str>;
type TableVec<'a, T> = ForwardsUOffset<Vector<'a, ForwardsUOffset<T>>>;

/// Declares a table type wrapping a `flatbuffers::Table`.
macro_rules! table {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub(super) struct $name<'a> {
            tab: Table<'a>,
        }

        impl<'a> Follow<'a> for $name<'a> {
            type Inner = $name<'a>;
            unsafe fn follow(buf: &'a [u8], loc: usize) -> Self::Inner {
                // SAFETY: the caller (a verified offset) guarantees a table at `loc`.
                $name {
                    tab: unsafe { Table::new(buf, loc) },
                }
            }
        }

        impl $name<'_> {
            /// Whether slot `index` is present, whatever its type (for
            /// slots we only refuse, never read).
            #[allow(dead_code)]
            pub(super) fn has(&self, index: VOffsetT) -> bool {
                self.tab.vtable().get(slot(index)) != 0
            }
        }
    };
}

table!(
    /// `Model { 0: layers; 1: learning; 2: version }`.
    ModelT
);
table!(
    /// `LayerFlatBuffer { 1: name; 2: variables; 3: params; 4: inbound names }`.
    LayerT
);
table!(
    /// `LayerParams { 3: DictParams }`.
    ParamsT
);
table!(
    /// `DictParams { 0: entries; 1: double entries }`.
    DictT
);
table!(
    /// `DictParamsEntry { 0: key; 1: value int32 (default 0) }`.
    EntryT
);
table!(
    /// `TensorFlatBuffer { 0: name; 1: shape [uint32]; 2: data [ubyte]; 3: dtype; 4: flag }`.
    TensorT
);

/// Slot numbers, named.
pub(super) mod slots {
    pub const MODEL_LAYERS: u16 = 0;
    pub const MODEL_LEARNING: u16 = 1;
    pub const MODEL_VERSION: u16 = 2;
    pub const LAYER_NAME: u16 = 1;
    pub const LAYER_VARIABLES: u16 = 2;
    pub const LAYER_PARAMS: u16 = 3;
    pub const LAYER_INBOUND: u16 = 4;
    pub const PARAMS_DICT: u16 = 3;
    pub const DICT_ENTRIES: u16 = 0;
    pub const DICT_DOUBLES: u16 = 1;
    pub const ENTRY_KEY: u16 = 0;
    pub const ENTRY_VALUE: u16 = 1;
    pub const TENSOR_NAME: u16 = 0;
    pub const TENSOR_SHAPE: u16 = 1;
    pub const TENSOR_DATA: u16 = 2;
    pub const TENSOR_DTYPE: u16 = 3;
    pub const TENSOR_FLAG: u16 = 4;
}
use slots::*;

impl Verifiable for ModelT<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<TableVec<LayerT>>("layers", slot(MODEL_LAYERS), false)?
            .visit_field::<Str>("version", slot(MODEL_VERSION), false)?
            .finish();
        Ok(())
    }
}

impl Verifiable for LayerT<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<Str>("name", slot(LAYER_NAME), false)?
            .visit_field::<TableVec<TensorT>>("variables", slot(LAYER_VARIABLES), false)?
            .visit_field::<ForwardsUOffset<ParamsT>>("params", slot(LAYER_PARAMS), false)?
            .visit_field::<TableVec<&str>>("inbounds", slot(LAYER_INBOUND), false)?
            .finish();
        Ok(())
    }
}

impl Verifiable for ParamsT<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<ForwardsUOffset<DictT>>("dict", slot(PARAMS_DICT), false)?
            .finish();
        Ok(())
    }
}

impl Verifiable for DictT<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<TableVec<EntryT>>("entries", slot(DICT_ENTRIES), false)?
            .finish();
        Ok(())
    }
}

impl Verifiable for EntryT<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<Str>("key", slot(ENTRY_KEY), false)?
            .visit_field::<i32>("value", slot(ENTRY_VALUE), false)?
            .finish();
        Ok(())
    }
}

impl Verifiable for TensorT<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<Str>("name", slot(TENSOR_NAME), false)?
            .visit_field::<ForwardsUOffset<Vector<u32>>>("shape", slot(TENSOR_SHAPE), false)?
            .visit_field::<ForwardsUOffset<Vector<u8>>>("data", slot(TENSOR_DATA), false)?
            .visit_field::<u8>("dtype", slot(TENSOR_DTYPE), false)?
            .visit_field::<bool>("flag", slot(TENSOR_FLAG), false)?
            .finish();
        Ok(())
    }
}

// SAFETY (every accessor below): `root` verified the whole buffer, and the
// verifier of each table checked this slot with this exact type.

impl<'a> ModelT<'a> {
    pub(super) fn layers(&self) -> Option<Vector<'a, ForwardsUOffset<LayerT<'a>>>> {
        unsafe { self.tab.get::<TableVec<LayerT>>(slot(MODEL_LAYERS), None) }
    }
    pub(super) fn version(&self) -> Option<&'a str> {
        unsafe { self.tab.get::<Str>(slot(MODEL_VERSION), None) }
    }
}

impl<'a> LayerT<'a> {
    pub(super) fn name(&self) -> Option<&'a str> {
        unsafe { self.tab.get::<Str>(slot(LAYER_NAME), None) }
    }
    pub(super) fn variables(&self) -> Option<Vector<'a, ForwardsUOffset<TensorT<'a>>>> {
        unsafe {
            self.tab
                .get::<TableVec<TensorT>>(slot(LAYER_VARIABLES), None)
        }
    }
    pub(super) fn params(&self) -> Option<ParamsT<'a>> {
        unsafe {
            self.tab
                .get::<ForwardsUOffset<ParamsT>>(slot(LAYER_PARAMS), None)
        }
    }
    pub(super) fn inbounds(&self) -> Option<Vector<'a, ForwardsUOffset<&'a str>>> {
        unsafe { self.tab.get::<TableVec<&str>>(slot(LAYER_INBOUND), None) }
    }
}

impl<'a> ParamsT<'a> {
    pub(super) fn dict(&self) -> Option<DictT<'a>> {
        unsafe {
            self.tab
                .get::<ForwardsUOffset<DictT>>(slot(PARAMS_DICT), None)
        }
    }
}

impl<'a> DictT<'a> {
    pub(super) fn entries(&self) -> Option<Vector<'a, ForwardsUOffset<EntryT<'a>>>> {
        unsafe { self.tab.get::<TableVec<EntryT>>(slot(DICT_ENTRIES), None) }
    }
}

impl<'a> EntryT<'a> {
    pub(super) fn key(&self) -> Option<&'a str> {
        unsafe { self.tab.get::<Str>(slot(ENTRY_KEY), None) }
    }
    /// The value; 0 (the default) when the slot is absent.
    pub(super) fn value(&self) -> i32 {
        unsafe { self.tab.get::<i32>(slot(ENTRY_VALUE), Some(0)) }.unwrap_or(0)
    }
}

impl<'a> TensorT<'a> {
    pub(super) fn name(&self) -> Option<&'a str> {
        unsafe { self.tab.get::<Str>(slot(TENSOR_NAME), None) }
    }
    pub(super) fn shape(&self) -> Option<Vector<'a, u32>> {
        unsafe {
            self.tab
                .get::<ForwardsUOffset<Vector<u32>>>(slot(TENSOR_SHAPE), None)
        }
    }
    pub(super) fn data(&self) -> Option<&'a [u8]> {
        let v = unsafe {
            self.tab
                .get::<ForwardsUOffset<Vector<u8>>>(slot(TENSOR_DATA), None)
        };
        v.map(|v| v.bytes())
    }
    pub(super) fn dtype(&self) -> Option<u8> {
        unsafe { self.tab.get::<u8>(slot(TENSOR_DTYPE), None) }
    }
    pub(super) fn flag(&self) -> bool {
        unsafe { self.tab.get::<bool>(slot(TENSOR_FLAG), Some(false)) }.unwrap_or(false)
    }
}

/// Verifies `buffer` and returns its root `Model` table. The limits keep a
/// hostile buffer (tables shared many times over) from costing more than a
/// few times its own size to walk.
pub(super) fn root(buffer: &[u8]) -> Result<ModelT<'_>, InvalidFlatbuffer> {
    let opts = flatbuffers::VerifierOptions {
        max_depth: 16,
        max_tables: buffer.len() / 4 + 16,
        max_apparent_size: buffer.len().saturating_mul(4).saturating_add(4096),
        ignore_missing_null_terminator: false,
    };
    flatbuffers::root_with_opts::<ModelT>(&opts, buffer)
}
