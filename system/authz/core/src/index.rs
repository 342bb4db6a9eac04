//! The authorization index: every fact a check needs (actors, bindings, groups, the registry,
//! resources, roles, permissions and member-roles), held in memory as an immutable snapshot.
//!
//! A check loads the current snapshot (one atomic pointer read, never a lock), resolves its
//! request against it and hands the engine plain facts: no database read on the hot path.
//! Writers build the next snapshot from the current one (persistent structures share everything
//! they do not change) and swap it in, bumping the revision.
//!
//! The index follows the change feed (`plystra_contracts::feed`): the capability's follower
//! loads it from identity and the registry (through their contract services) and from the
//! grant tables, then hands it every committed change in revision order, whichever process
//! committed it. Each snapshot carries the feed revision it has applied. Until a load succeeds
//! checks fail closed with 503; whether a loaded index is current enough to answer is the
//! follower's staleness rule, not the index's.
//!
//! **Layout.** Every ID is numbered once per kind when a fact first names it ([`Names`]: the
//! text is held once, inline in the names' own array or shared by every row that shows it),
//! and rows are chunked copy-on-write arrays indexed by those numbers, holding numbers rather
//! than strings: a binding names its user and member by number, a resource its space, group
//! and owner. A check hashes only what the request names that has no row to reach it from
//! (the binding, the type, the action, the resource); the user, member and space are reached
//! from the binding's row and compared with the request's text.
//!
//! Each member's grants are precomputed by (type, action): what a check needs from the
//! member-roles, roles, role-permissions and permissions is one lookup. A change to any of those
//! recomputes only the members it reaches (found through reverse indexes), when the change is
//! settled; the anchor group stays a lookup at check time, so moving a group recomputes nothing.
//!
//! Users carry their usernames (unique, renamable) both ways, so that `index/subjects.rs` maps
//! how a client names users, bindings and resources onto the index's IDs without a database read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use std::borrow::Cow;
use std::hash::Hash;

use crate::condition::Condition;
use crate::engine::{
    ActorFacts, Attributes, Candidate, Facts, GroupFacts, StoredAttributes, TargetFacts,
};
use crate::{Fact, ResolveError, Scope};
use arc_swap::ArcSwap;
use equivalent::Equivalent;
use imbl::OrdSet;
use imbl::shared_ptr::DefaultSharedPtr;

mod apply;
mod lookup;
mod subjects;

pub use lookup::{ResourceLookup, ResourcePage, Subject, SubjectLookup, SubjectPage};
pub use subjects::BindingView;

/// A persistent hash map with a fast (non-SipHash) hasher.
type HashMap<K, V> = imbl::GenericHashMap<K, V, foldhash::fast::RandomState, DefaultSharedPtr>;
/// A flat (not persistent) hash table: compact, shared between snapshots behind an `Arc`.
type FlatMap<K, V> = hashbrown::HashMap<K, V, foldhash::fast::RandomState>;

/// Slots per chunk of a [`Chunked`] array.
const CHUNK: usize = 64;
/// Chunks per page of a [`Chunked`] array.
const PAGE: usize = 64;

/// A chunk of a [`Chunked`] array: its slots, in the chunk's own allocation.
type Chunk<T> = Arc<[Option<T>]>;
/// A page of a [`Chunked`] array: up to [`PAGE`] chunks.
type Page<T> = Arc<[Chunk<T>]>;

/// A chunked copy-on-write array: a short table of pages of [`PAGE`] chunks of [`CHUNK`]
/// slots, each level shared. Reading an element is three loads past the table (page, chunk,
/// slot; the table and the pages are small and stay in cache); changing one copies its chunk
/// (64 slots), its page (64 pointers) and the table (one pointer per 4,096 slots) when another
/// snapshot shares them, and nothing while one snapshot alone holds them (a load).
#[derive(Debug)]
struct Chunked<T> {
    pages: Arc<[Page<T>]>,
    len: usize,
}

impl<T> Clone for Chunked<T> {
    fn clone(&self) -> Self {
        Self {
            pages: Arc::clone(&self.pages),
            len: self.len,
        }
    }
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Self {
            pages: Arc::from(Vec::new()),
            len: 0,
        }
    }
}

/// Grows a shared slice to at least `len` elements with `fill`.
fn grown<E: Clone>(slice: &Arc<[E]>, len: usize, fill: impl Fn() -> E) -> Arc<[E]> {
    let mut items = slice.to_vec();
    items.resize_with(len, fill);
    items.into()
}

impl<T: Clone> Chunked<T> {
    fn get(&self, i: usize) -> Option<&T> {
        self.pages
            .get(i / (CHUNK * PAGE))?
            .get((i / CHUNK) % PAGE)?
            .get(i % CHUNK)?
            .as_ref()
    }

    /// One past the highest slot ever set.
    fn len(&self) -> usize {
        self.len
    }

    /// Slot `i`, to change, the array grown to hold it.
    fn slot_mut(&mut self, i: usize) -> &mut Option<T> {
        let (p, c) = (i / (CHUNK * PAGE), (i / CHUNK) % PAGE);
        if self.pages.len() <= p {
            self.pages = grown(&self.pages, p + 1, || Arc::from(Vec::new()));
        }
        let page = &mut Arc::make_mut(&mut self.pages)[p];
        if page.len() <= c {
            *page = grown(page, c + 1, || (0..CHUNK).map(|_| None).collect());
        }
        let chunk = &mut Arc::make_mut(page)[c];
        self.len = self.len.max(i + 1);
        &mut Arc::make_mut(chunk)[i % CHUNK]
    }

    fn push(&mut self, value: T) {
        let at = self.len;
        *self.slot_mut(at) = Some(value);
    }
}

/// A string shared by every row that shows it: an ID's text is held once.
type Shared = Arc<str>;

/// A dense number given to one ID of one kind, in the order the index first saw it.
type Num = u32;

/// The longest ID a [`Key`] holds inline (every generated ID, prefix included, fits).
const INLINE: usize = 38;

/// An ID as a hash table key: its bytes inline when they fit, so that comparing it with a
/// request's text reads no memory beyond the table's own slot.
#[derive(Debug, Clone)]
enum Key {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Shared),
}

impl Key {
    fn new(text: &str) -> Self {
        let src = text.as_bytes();
        if src.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..src.len()].copy_from_slice(src);
            Self::Inline {
                len: src.len() as u8,
                bytes,
            }
        } else {
            Self::Heap(text.into())
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Heap(text) => text.as_bytes(),
        }
    }

    /// Whether this is the key of `text`.
    fn is(&self, text: &str) -> bool {
        self.as_bytes() == text.as_bytes()
    }
}

/// How a [`Names`] table holds each numbered ID's text: inline where it fits ([`Key`], for
/// the kinds that rows name only by number), or as a [`Shared`] text that rows of other kinds
/// hold a count of (a member-role's grants show their role's and permission's IDs).
trait IdText: Clone {
    fn of(text: &str) -> Self;
    fn as_str(&self) -> &str;
}

impl IdText for Key {
    fn of(text: &str) -> Self {
        Self::new(text)
    }

    /// A key's bytes are always a whole `&str`'s, so reading them back as text cannot fail.
    fn as_str(&self) -> &str {
        match self {
            Self::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Self::Heap(text) => text,
        }
    }
}

impl IdText for Shared {
    fn of(text: &str) -> Self {
        text.into()
    }

    fn as_str(&self) -> &str {
        self
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        KeyRef(self.as_bytes()).hash(state);
    }
}

/// A borrowed [`Key`]: hashes and compares like it, so a lookup allocates nothing.
struct KeyRef<'a>(&'a [u8]);

impl Hash for KeyRef<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(self.0);
        state.write_u8(0xff);
    }
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.0 == key.as_bytes()
    }
}

/// A resource's name: (the number of its type's key, its ID or external ID).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TypedKey(Num, Key);

/// A borrowed [`TypedKey`]: hashes and compares like it, so a lookup allocates nothing.
#[derive(Hash)]
struct TypedRef<'a>(Num, KeyRef<'a>);

impl Equivalent<TypedKey> for TypedRef<'_> {
    fn equivalent(&self, key: &TypedKey) -> bool {
        self.0 == key.0 && self.1.equivalent(&key.1)
    }
}

/// The numbers of one kind of ID. A number is never reused or taken back, so a row array
/// indexed by it only grows; an ID named before its own fact arrives (a binding's user, a
/// member-role's anchor) has a number and no row until then.
///
/// The texts by number are held as `T`: inline by default, so numbering an ID allocates
/// nothing and reading its text back reads the array's slot (a load names 100,000 resources);
/// as [`Shared`] texts for the kinds whose IDs other rows hold as text.
///
/// Most numbers sit in a flat table that every snapshot since it was built shares; numbers
/// given since are in a small persistent map, merged into a new flat table when it reaches an
/// eighth of it (a persistent hash map holds a hundred thousand IDs in several times the
/// memory). While one snapshot alone holds the flat table (a load), new numbers go straight
/// into it.
#[derive(Debug, Clone)]
struct Names<K: Clone + Hash + Eq, T: IdText = Key> {
    settled: Arc<FlatMap<K, Num>>,
    recent: HashMap<K, Num>,
    text: Chunked<T>,
    /// Whether every ID sorts after every ID numbered before it, so that comparing numbers
    /// compares IDs. Kept while the IDs arrive in order (a load reads rows in creation order,
    /// and IDs sort by creation time); then the ID-ordered lists are kept without reading IDs.
    in_order: bool,
}

impl<K: Clone + Hash + Eq, T: IdText> Default for Names<K, T> {
    fn default() -> Self {
        Self {
            settled: Arc::default(),
            recent: HashMap::default(),
            text: Chunked::default(),
            in_order: true,
        }
    }
}

impl<K: Clone + Hash + Eq, T: IdText> Names<K, T> {
    fn lookup<Q: Hash + Equivalent<K> + ?Sized>(&self, key: &Q) -> Option<Num> {
        match self.settled.get(key) {
            Some(n) => Some(*n),
            None if self.recent.is_empty() => None,
            None => self.recent.get(key).copied(),
        }
    }

    fn text(&self, n: Num) -> &str {
        self.text.get(n as usize).map_or("", T::as_str)
    }

    /// Whether `a`'s ID sorts before `b`'s.
    fn before(&self, a: Num, b: Num) -> bool {
        if self.in_order {
            a < b
        } else {
            self.text(a) < self.text(b)
        }
    }

    /// How `a`'s ID and `b`'s compare.
    fn order(&self, a: Num, b: Num) -> std::cmp::Ordering {
        if self.in_order {
            a.cmp(&b)
        } else {
            self.text(a).cmp(self.text(b))
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.text.len()
    }

    /// Gives `text` the next number's text, noting whether it still sorts after every other.
    fn number(&mut self, text: &str) {
        let n = self.text.len() as Num;
        if self.in_order && n > 0 && text <= self.text(n - 1) {
            self.in_order = false;
        }
        self.text.push(T::of(text));
    }

    /// Numbers `key` (whose text is `text`) with the next number.
    fn add(&mut self, key: K, text: &str) -> Num {
        let n = self.text.len() as Num;
        self.number(text);
        if let Some(settled) = Arc::get_mut(&mut self.settled) {
            settled.insert(key, n);
            return n;
        }
        self.recent.insert(key, n);
        if self.recent.len() >= (self.settled.len() / 8).max(1024) {
            let mut merged = FlatMap::clone(&self.settled);
            merged.extend(std::mem::take(&mut self.recent));
            self.settled = Arc::new(merged);
        }
        n
    }
}

impl<K: Clone + Hash + Eq> Names<K, Shared> {
    /// The text of number `n`, shared.
    fn shared(&self, n: Num) -> Shared {
        self.text
            .get(n as usize)
            .cloned()
            .unwrap_or_else(|| "".into())
    }
}

impl<T: IdText> Names<Key, T> {
    /// The number of `text`.
    fn get(&self, text: &str) -> Option<Num> {
        self.lookup(&KeyRef(text.as_bytes()))
    }

    /// The number of `text`, given one if it has none.
    fn intern(&mut self, text: &str) -> Num {
        if let Some(n) = self.get(text) {
            return n;
        }
        self.add(Key::new(text), text)
    }
}

impl Names<TypedKey> {
    /// The number of (`type_key`, `id`).
    fn get(&self, type_key: Num, id: &str) -> Option<Num> {
        self.lookup(&TypedRef(type_key, KeyRef(id.as_bytes())))
    }

    /// The number of (`type_key`, `id`), given one if it has none.
    fn intern(&mut self, type_key: Num, id: &str) -> Num {
        // While one snapshot alone holds the flat table and nothing is recent (a load), the
        // name is looked up and added with one hash and one probe: a load names every resource
        // anew.
        if self.recent.is_empty()
            && let Some(settled) = Arc::get_mut(&mut self.settled)
        {
            let next = self.text.len() as Num;
            match settled.entry(TypedKey(type_key, Key::new(id))) {
                hashbrown::hash_map::Entry::Occupied(found) => return *found.get(),
                hashbrown::hash_map::Entry::Vacant(vacant) => {
                    vacant.insert(next);
                }
            }
            self.number(id);
            return next;
        }
        if let Some(n) = self.get(type_key, id) {
            return n;
        }
        self.add(TypedKey(type_key, Key::new(id)), id)
    }

    /// Makes room for `additional` more names without growing the table on the way (a load
    /// knows how many resources a part holds).
    fn reserve(&mut self, additional: usize) {
        if let Some(settled) = Arc::get_mut(&mut self.settled) {
            settled.reserve(additional);
        }
    }
}

/// Rows of one kind, indexed by the kind's [`Num`]; `None` where no fact has arrived yet.
#[derive(Debug, Clone)]
struct Rows<R> {
    rows: Chunked<R>,
    /// How many are `Some`.
    present: usize,
}

impl<R> Default for Rows<R> {
    fn default() -> Self {
        Self {
            rows: Chunked::default(),
            present: 0,
        }
    }
}

impl<R: Clone> Rows<R> {
    fn get(&self, n: Num) -> Option<&R> {
        self.rows.get(n as usize)
    }

    /// Sets row `n`, returning the one it replaces.
    fn set(&mut self, n: Num, row: R) -> Option<R> {
        let old = self.rows.slot_mut(n as usize).replace(row);
        if old.is_none() {
            self.present += 1;
        }
        old
    }

    fn get_mut(&mut self, n: Num) -> Option<&mut R> {
        self.get(n)?;
        self.rows.slot_mut(n as usize).as_mut()
    }

    /// Clears row `n`.
    fn remove(&mut self, n: Num) {
        if self.get(n).is_some() && self.rows.slot_mut(n as usize).take().is_some() {
            self.present -= 1;
        }
    }
}

/// A status as text (for the trace), with whether it is `active` worked out once, so that a
/// decision compares a flag instead of reading the text. The usual statuses share one text.
#[derive(Debug, Clone)]
struct Status {
    text: Shared,
    active: bool,
}

impl Status {
    fn of(text: &str) -> Self {
        Self {
            active: text == "active",
            text: status_text(text),
        }
    }
}

/// The usual statuses, visibilities and risk levels: one shared text each, so that a hundred
/// thousand rows do not each hold "active", and a resource row holds a byte for them.
const USUAL_TEXTS: [&str; 12] = [
    "active",
    "disabled",
    "revoked",
    "archived",
    "deprecated",
    "suspended",
    "private",
    "space",
    "public",
    "normal",
    "high",
    "critical",
];

fn usual_texts() -> &'static [Shared; USUAL_TEXTS.len()] {
    use std::sync::OnceLock;
    static USUAL: OnceLock<[Shared; USUAL_TEXTS.len()]> = OnceLock::new();
    USUAL.get_or_init(|| USUAL_TEXTS.map(Shared::from))
}

/// `text` as one of the usual shared texts, or a new one.
fn status_text(text: &str) -> Shared {
    match usual_text(text) {
        Some(at) => Arc::clone(&usual_texts()[usize::from(at)]),
        None => text.into(),
    }
}

/// The place of `text` among the usual texts.
fn usual_text(text: &str) -> Option<u8> {
    USUAL_TEXTS
        .iter()
        .position(|u| *u == text)
        .and_then(|at| u8::try_from(at).ok())
}

/// A resource's status or visibility in one byte: a usual text's place, [`Word::NONE`] for no
/// text, or [`Word::ELSEWHERE`] when the text is unusual and kept in the snapshot's
/// `resource_extras`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Word(u8);

impl Word {
    const NONE: Self = Self(u8::MAX);
    const ELSEWHERE: Self = Self(u8::MAX - 1);

    fn of(text: Option<&str>) -> Self {
        match text {
            None => Self::NONE,
            Some(text) => usual_text(text).map_or(Self::ELSEWHERE, Self),
        }
    }

    /// The usual text, when the word names one.
    fn usual(self) -> Option<&'static str> {
        USUAL_TEXTS.get(usize::from(self.0)).copied()
    }
}

#[derive(Debug, Clone)]
struct MemberRow {
    space: Num,
    /// The space's ID, shared with its name: a check reads it without a lookup.
    space_id: Shared,
    status: Status,
}

#[derive(Debug, Clone)]
struct BindingRow {
    user: Num,
    member: Num,
    /// The user's and member's IDs: a check compares them with the request's without a lookup.
    user_id: Key,
    member_id: Key,
    status: Status,
    revoked: bool,
    expires_at: Option<Shared>,
    expires_unix: Option<i64>,
    /// Copies of its user's and member's rows and of the member's grants, kept current through
    /// `bindings_of_user` and `bindings_of_member`: a check reads the whole actor from this
    /// one row.
    user_row: Option<Status>,
    member_row: Option<MemberRow>,
    grants: Option<Arc<MemberGrants>>,
}

#[derive(Debug, Clone)]
struct GroupRow {
    /// Its own ID and its space's, shared with their names.
    id: Shared,
    space_id: Shared,
    path: Shared,
}

#[derive(Debug, Clone)]
struct TypeRow {
    /// The number of its key in `type_keys`.
    key: Num,
    active: bool,
}

#[derive(Debug, Clone)]
struct ResourceRow {
    /// The number of (type key, external ID) in `external_names`.
    external: Num,
    /// Its space, group and owner, by number (their IDs are their names' texts).
    space: Num,
    group: Option<Num>,
    owner: Option<Num>,
    /// Its status and visibility, what conditions read: usual texts fit in a byte each (the
    /// row stays 28 bytes), anything else is in the snapshot's `resource_extras`.
    status: Word,
    visibility: Word,
}

/// What conditions read of a resource that does not fit its row: an unusual status or
/// visibility, and its stored metadata (JSON object text). Kept only for the resources that have
/// one, so that an index whose resources are usual and carry no metadata holds nothing for them.
#[derive(Debug, Clone, Default)]
struct ResourceExtras {
    status: Option<Shared>,
    visibility: Option<Shared>,
    metadata: Option<Shared>,
}

#[derive(Debug, Clone)]
struct RoleRow {
    key: Shared,
    space_id: Shared,
    active: bool,
}

#[derive(Debug, Clone)]
struct PermissionRow {
    /// The number of its type key.
    type_key: Num,
    action: Num,
    scope: Option<Scope>,
    active: bool,
    /// Its condition, compiled once.
    condition: Option<Arc<Condition>>,
}

#[derive(Debug, Clone)]
struct RolePermissionRow {
    role: Num,
    permission: Num,
    deleted: bool,
}

#[derive(Debug, Clone)]
struct MemberRoleRow {
    member: Num,
    space_id: Shared,
    role: Num,
    anchor: Option<Num>,
    active: bool,
}

/// One grant a member holds: an active member-role of an active role, and an active permission
/// of a known scope. Everything a candidate needs but the anchor's group, which is looked up
/// when a check uses it. Its strings are shared with the rows' names.
#[derive(Debug)]
struct GrantRow {
    member_role_id: Shared,
    member_role_space_id: Shared,
    role_id: Shared,
    role_key: Shared,
    role_space_id: Shared,
    permission_id: Shared,
    scope: Scope,
    anchor: Option<Num>,
    condition: Option<Arc<Condition>>,
}

/// A member's grants for one (type key, action), in candidate order (member-roles by ID, then
/// each role's permissions by ID).
#[derive(Debug)]
struct GrantList {
    type_key: Num,
    action: Num,
    grants: Box<[GrantRow]>,
}

/// A member's grants: a handful of (type, action) lists, searched in a line. Rebuilt whole when
/// one of its grants changes.
type MemberGrants = Box<[GrantList]>;

/// The list for (type key, action) among a member's `grants`.
fn grant_list(grants: Option<&MemberGrants>, type_key: Num, action: Num) -> Option<&GrantList> {
    grants?
        .iter()
        .find(|l| l.type_key == type_key && l.action == action)
}

/// The resources that carry one (type key, external ID), by ID: nearly always one.
#[derive(Debug, Clone)]
enum Carriers {
    One(Num),
    Many(Arc<[Num]>),
}

impl Carriers {
    fn first(&self) -> Option<Num> {
        match self {
            Self::One(n) => Some(*n),
            Self::Many(all) => all.first().copied(),
        }
    }

    fn to_vec(&self) -> Vec<Num> {
        match self {
            Self::One(n) => vec![*n],
            Self::Many(all) => all.to_vec(),
        }
    }

    fn of(mut list: Vec<Num>) -> Option<Self> {
        match list.len() {
            0 => None,
            1 => list.pop().map(Self::One),
            _ => Some(Self::Many(list.into())),
        }
    }
}

/// One immutable state of the index. Cloning is cheap: every part is persistent.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    revision: u64,
    user_names: Names<Key>,
    users: Rows<Status>,
    /// user → its username, and username → its user, sharing one text: how a client that names
    /// users by username is mapped onto their IDs. Usernames are unique among users.
    username_of_user: Rows<Shared>,
    user_of_username: HashMap<Shared, Num>,
    /// Users' and members' stored metadata (JSON object text), for those that have any: what
    /// conditions read as `subject.properties`.
    user_metadata: Rows<Shared>,
    member_metadata: Rows<Shared>,
    space_names: Names<Key, Shared>,
    spaces: Rows<Status>,
    member_names: Names<Key>,
    members: Rows<MemberRow>,
    binding_names: Names<Key>,
    bindings: Rows<BindingRow>,
    /// user → its bindings, member → its bindings: whose copies a user or member change
    /// reaches.
    bindings_of_user: Rows<OrdSet<Num>>,
    bindings_of_member: Rows<OrdSet<Num>>,
    group_names: Names<Key, Shared>,
    groups: Rows<GroupRow>,
    /// Types by ID.
    type_names: Names<Key>,
    types: Rows<TypeRow>,
    /// Type keys, as permissions, actions and resources name types.
    type_keys: Names<Key>,
    /// Type key → the type that has it.
    type_of_key: Rows<Num>,
    action_names: Names<Key>,
    /// Type key → the actions the registry declares for it, sorted: a check asks whether one
    /// is declared (a few numbers in a row it reaches in three loads, where a persistent hash
    /// set walked its nodes).
    actions: Rows<Box<[Num]>>,
    /// Their risk levels (shared texts), where the facts carry them: what conditions read.
    action_risk: HashMap<(Num, Num), Shared>,
    /// Resources by (type key, ID).
    resource_names: Names<TypedKey>,
    resources: Rows<ResourceRow>,
    /// The resources' unusual statuses and visibilities and their metadata, for the resources
    /// that have any (see [`ResourceExtras`]). A chunked array: a chunk is held only where a
    /// resource numbered in it has extras.
    resource_extras: Rows<ResourceExtras>,
    /// (type key, external ID) pairs any resource has carried.
    external_names: Names<TypedKey>,
    /// The resources that carry each of them now.
    carriers: Rows<Carriers>,
    /// (type key, space) → the IDs of the resources of that type in that space, in ID order:
    /// what a lookup through a space-wide grant reads.
    resources_in_space: HashMap<(Num, Num), SortedNums>,
    /// group → its resources of each type: a group grant, and each group of a `group_tree`
    /// grant's subtree.
    resources_in_group: Rows<ResourcesByType>,
    /// member → the resources of each type it owns: a `self` grant.
    resources_of_owner: Rows<ResourcesByType>,
    /// (type key, action) → the members holding a grant for it, in member-ID order: where a
    /// subject lookup starts.
    holders: HashMap<(Num, Num), SortedNums>,
    /// Every group as (space, path, group), in path order within its space: a `group_tree`
    /// grant's subtree is one range.
    groups_by_path: OrdSet<(Num, Shared, Num)>,
    role_names: Names<Key, Shared>,
    roles: Rows<RoleRow>,
    permission_names: Names<Key, Shared>,
    permissions: Rows<PermissionRow>,
    role_permission_names: Names<Key>,
    role_permissions: Rows<RolePermissionRow>,
    member_role_names: Names<Key, Shared>,
    member_roles: Rows<MemberRoleRow>,
    /// role → its role-permissions not removed.
    permissions_of_role: Rows<OrdSet<Num>>,
    /// member → its member-roles.
    roles_of_member: Rows<OrdSet<Num>>,
    /// role → the member-roles of it (any status): whose grants a role change reaches.
    member_roles_of_role: Rows<OrdSet<Num>>,
    /// permission → the role-permissions of it (removed or not): whose grants a permission
    /// change reaches.
    role_permissions_of_permission: Rows<OrdSet<Num>>,
    /// member → its grants: what a check reads.
    grants_of_member: Rows<Arc<MemberGrants>>,
    /// Members whose grants an applied fact may have changed; empty in a published snapshot.
    unsettled: std::collections::BTreeSet<Num>,
    /// Resources added by the facts applied but not yet listed by group and owner; empty in a
    /// published snapshot.
    unlisted: Unlisted,
}

/// The resources a change adds, to be listed by group and owner when it is settled: as
/// (group or owner, type key, resource). A load adds every resource, and listing them one by
/// one reached a random list, and its last ID, for each (a tenth of a load's build); listed
/// at once they are sorted first and each list is written in one go.
#[derive(Debug, Clone, Default)]
struct Unlisted {
    in_group: Vec<(Num, Num, Num)>,
    of_owner: Vec<(Num, Num, Num)>,
}

/// The actor's statuses as values, for the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorStatuses<'a> {
    /// The user's status.
    pub user_status: Cow<'a, str>,
    /// The member's status.
    pub member_status: Cow<'a, str>,
    /// The binding's status.
    pub user_member_status: Cow<'a, str>,
    /// The binding's expiry, RFC 3339.
    pub user_member_expires_at: Option<Cow<'a, str>>,
    /// The request space's status.
    pub space_status: Cow<'a, str>,
}

/// A managed-mode request, by IDs.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The user.
    pub user_id: &'a str,
    /// The member.
    pub member_id: &'a str,
    /// The binding.
    pub user_member_id: &'a str,
    /// The space; the member's when empty.
    pub space_id: &'a str,
    /// The type, by key or ID.
    pub resource_type: &'a str,
    /// The resource, by ID or external ID.
    pub resource_id: &'a str,
    /// The action.
    pub action: &'a str,
}

/// A request resolved against one snapshot: the engine's facts and what the trace adds. It
/// borrows from the snapshot and the request.
#[derive(Debug, Clone)]
pub struct Resolved<'a> {
    /// What the engine decides on.
    pub facts: Facts<'a>,
    /// The actor's statuses.
    pub statuses: ActorStatuses<'a>,
    /// The target's space when the resource was found.
    pub target_space_id: Option<&'a str>,
    /// The snapshot's revision.
    pub revision: u64,
}

fn parse_unix(rfc3339: &str) -> Option<i64> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

fn not_found(entity: &'static str, id: &str) -> ResolveError {
    ResolveError::NotFound {
        entity,
        id: id.to_owned(),
    }
}

/// Adds `n` to the set under `key`.
fn add_to(sets: &mut Rows<OrdSet<Num>>, key: Num, n: Num) {
    match sets.get_mut(key) {
        Some(set) => {
            set.insert(n);
        }
        None => {
            sets.set(key, OrdSet::unit(n));
        }
    }
}

/// The most resource numbers one chunk of [`SortedNums`] holds before it is split in two.
const SORTED_CHUNK: usize = 512;

/// Numbers of one kind in the order of their IDs, in copy-on-write chunks of at most
/// [`SORTED_CHUNK`]: the resources of one type in one space (a hundred thousand of them), the
/// members holding a grant for one (type, action). A change copies one chunk and
/// the list of chunks (nothing while one snapshot alone holds them: a load); four bytes a
/// resource, where a persistent ordered set of the IDs takes ten times that and a load inserts
/// into it several times slower.
#[derive(Debug, Clone, Default)]
struct SortedNums {
    chunks: Arc<Vec<Arc<Vec<Num>>>>,
}

impl SortedNums {
    fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The chunk `id` belongs in: the first whose last ID is not below it, else the last.
    fn chunk_of<K: Clone + Hash + Eq>(&self, id: &str, names: &Names<K>) -> usize {
        let at = self
            .chunks
            .partition_point(|c| c.last().is_some_and(|m| names.text(*m) < id));
        at.min(self.chunks.len().saturating_sub(1))
    }

    /// Adds resource `n` (whose ID is `names.text(n)`).
    fn insert<K: Clone + Hash + Eq>(&mut self, n: Num, names: &Names<K>) {
        let chunks = Arc::make_mut(&mut self.chunks);
        if chunks.is_empty() {
            chunks.push(Arc::new(vec![n]));
            return;
        }
        // IDs sort by creation time, so a load mostly appends: try the end first.
        let appends = chunks
            .last()
            .and_then(|c| c.last())
            .is_some_and(|m| names.before(*m, n));
        let c = if appends {
            chunks.len() - 1
        } else {
            let at = chunks.partition_point(|c| c.last().is_some_and(|m| names.before(*m, n)));
            at.min(chunks.len() - 1)
        };
        let chunk = Arc::make_mut(&mut chunks[c]);
        let at = if appends {
            chunk.len()
        } else {
            chunk.partition_point(|m| names.before(*m, n))
        };
        if chunk.get(at) == Some(&n) {
            return;
        }
        chunk.insert(at, n);
        if chunk.len() > SORTED_CHUNK {
            let upper = chunk.split_off(SORTED_CHUNK / 2);
            chunks.insert(c + 1, Arc::new(upper));
        }
    }

    /// Takes resource `n` (whose ID is `names.text(n)`) out.
    fn remove<K: Clone + Hash + Eq>(&mut self, n: Num, names: &Names<K>) {
        if self.chunks.is_empty() {
            return;
        }
        let id = names.text(n);
        let c = self.chunk_of(id, names);
        let Some(at) = self.chunks[c].iter().position(|m| *m == n) else {
            return;
        };
        let chunks = Arc::make_mut(&mut self.chunks);
        let chunk = Arc::make_mut(&mut chunks[c]);
        chunk.remove(at);
        if chunk.is_empty() {
            chunks.remove(c);
        }
    }

    /// The IDs after `after` (all of them without), in order.
    fn after<'a, K: Clone + Hash + Eq>(
        &'a self,
        after: Option<&str>,
        names: &'a Names<K>,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.nums_after(after, names).map(move |n| names.text(n))
    }

    /// The numbers whose IDs sort after `after` (all of them without), in order.
    fn nums_after<'a, K: Clone + Hash + Eq>(
        &'a self,
        after: Option<&str>,
        names: &'a Names<K>,
    ) -> impl Iterator<Item = Num> + 'a {
        let c = after.map_or(0, |after| {
            self.chunks
                .partition_point(|c| c.last().is_some_and(|m| names.text(*m) <= after))
        });
        let first = match (after, self.chunks.get(c)) {
            (Some(after), Some(chunk)) => chunk.partition_point(|m| names.text(*m) <= after),
            _ => 0,
        };
        self.chunks
            .iter()
            .skip(c)
            .enumerate()
            .flat_map(move |(i, chunk)| chunk[if i == 0 { first } else { 0 }..].iter())
            .copied()
    }
}

/// The resources of each type one group holds or one member owns, by number in ID order: a
/// few lists of tens, so a change copies one list (a persistent set would hold each in nodes
/// sized for thousands); a load, holding them alone, grows them in place.
#[derive(Debug, Clone, Default)]
struct ResourcesByType(Box<[(Num, Arc<Vec<Num>>)]>);

impl ResourcesByType {
    /// The resources of type key `type_key`, in ID order.
    fn of(&self, type_key: Num) -> &[Num] {
        self.0
            .iter()
            .find(|(t, _)| *t == type_key)
            .map_or(&[], |(_, list)| list)
    }

    /// Adds resource `n` of type key `type_key` to the lists under `key`, in ID order.
    fn add(rows: &mut Rows<Self>, key: Num, type_key: Num, n: Num, names: &Names<TypedKey>) {
        let Some(row) = rows.get_mut(key) else {
            rows.set(key, Self(Box::new([(type_key, Arc::new(vec![n]))])));
            return;
        };
        let Some((_, list)) = row.0.iter_mut().find(|(t, _)| *t == type_key) else {
            let mut lists = std::mem::take(&mut row.0).into_vec();
            lists.push((type_key, Arc::new(vec![n])));
            row.0 = lists.into_boxed_slice();
            return;
        };
        // A load mostly appends (IDs sort by creation time): try the end first.
        let at = if list.last().is_some_and(|m| names.before(*m, n)) {
            list.len()
        } else {
            let at = list.partition_point(|m| names.before(*m, n));
            if list.get(at) == Some(&n) {
                return;
            }
            at
        };
        // In place while one snapshot alone holds the list (a load); copied once otherwise.
        Arc::make_mut(list).insert(at, n);
    }

    /// Adds each (key, type key, resource) of `added` as [`ResourcesByType::add`] does, sorted
    /// first: each list is then reached once, and while numbers compare as IDs (see
    /// [`Names`]'s `in_order`) no ID is read.
    fn add_all(rows: &mut Rows<Self>, mut added: Vec<(Num, Num, Num)>, names: &Names<TypedKey>) {
        added.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then(names.order(a.2, b.2)));
        for run in added.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            let (key, type_key, first) = run[0];
            let list = rows
                .get_mut(key)
                .and_then(|row| row.0.iter_mut().find(|(t, _)| *t == type_key))
                .map(|(_, list)| list);
            match list {
                // Every one after the list's last: appended in place (copied once if shared).
                Some(list) if list.last().is_some_and(|m| names.before(*m, first)) => {
                    Arc::make_mut(list).extend(run.iter().map(|r| r.2));
                }
                Some(_) => {
                    for &(_, _, n) in run {
                        Self::add(rows, key, type_key, n, names);
                    }
                }
                None => {
                    let new = (type_key, Arc::new(run.iter().map(|r| r.2).collect()));
                    match rows.get_mut(key) {
                        Some(row) => {
                            let mut lists = std::mem::take(&mut row.0).into_vec();
                            lists.push(new);
                            row.0 = lists.into_boxed_slice();
                        }
                        None => {
                            rows.set(key, Self(Box::new([new])));
                        }
                    }
                }
            }
        }
    }

    /// Takes resource `n` of type key `type_key` out of the lists under `key`.
    fn remove(rows: &mut Rows<Self>, key: Num, type_key: Num, n: Num) {
        let Some(row) = rows.get(key) else {
            return;
        };
        let lists: Vec<(Num, Arc<Vec<Num>>)> = row
            .0
            .iter()
            .map(|(t, list)| {
                if *t == type_key {
                    (
                        *t,
                        Arc::new(list.iter().copied().filter(|m| *m != n).collect()),
                    )
                } else {
                    (*t, Arc::clone(list))
                }
            })
            .filter(|(_, list)| !list.is_empty())
            .collect();
        if lists.is_empty() {
            rows.remove(key);
        } else {
            rows.set(key, Self(lists.into_boxed_slice()));
        }
    }
}

/// Takes `n` out of the set under `key`, dropping the set when it empties.
fn take_from(sets: &mut Rows<OrdSet<Num>>, key: Num, n: Num) {
    if let Some(set) = sets.get_mut(key) {
        set.remove(&n);
        if set.is_empty() {
            sets.remove(key);
        }
    }
}

/// The actor's rows, found from the request.
struct Actor<'s> {
    user: &'s Status,
    member: &'s MemberRow,
    binding: &'s BindingRow,
}

impl<'s> Actor<'s> {
    /// The actor as the engine judges it, named by the given IDs, acting in space `space_id`
    /// (active or not as `space_active` says).
    fn facts<'a>(
        &self,
        user_id: &'a str,
        member_id: &'a str,
        user_member_id: &'a str,
        space_id: &'a str,
        space_active: bool,
    ) -> ActorFacts<'a>
    where
        's: 'a,
    {
        ActorFacts {
            user_id: Cow::Borrowed(user_id),
            user_active: self.user.active,
            member_id: Cow::Borrowed(member_id),
            member_active: self.member.status.active,
            member_space_id: Cow::Borrowed(&self.member.space_id),
            user_member_id: Cow::Borrowed(user_member_id),
            binding_revoked: self.binding.revoked,
            binding_expires_at: self.binding.expires_unix,
            space_id: Cow::Borrowed(space_id),
            space_active,
        }
    }
}

impl Snapshot {
    /// An empty snapshot at feed revision `revision`: where a full load starts. Its facts may
    /// then be applied in any order and in any number of [`Snapshot::apply_all`] calls.
    pub fn empty_at(revision: u64) -> Self {
        Self {
            revision,
            ..Self::default()
        }
    }

    /// The change feed's revision this snapshot has applied.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Makes room for `additional` more resources, so that applying a part of a load that
    /// holds that many does not grow the name tables on the way.
    pub fn reserve_resources(&mut self, additional: usize) {
        self.resource_names.reserve(additional);
        self.external_names.reserve(additional);
    }

    /// Applies facts (each the entity's full new state) as one change, then recomputes the
    /// grants of every member they reach.
    pub fn apply_all<S: AsRef<str>>(&mut self, facts: impl IntoIterator<Item = Fact<S>>) {
        for fact in facts {
            self.apply_one(fact);
        }
        self.settle();
    }

    /// Lists the resources the applied facts added, and recomputes the grants of the members
    /// they reached.
    fn settle(&mut self) {
        self.list_unlisted();
        for member in std::mem::take(&mut self.unsettled) {
            let grants = self.grants_of(member);
            self.rehold(member, &grants);
            let grants = if grants.is_empty() {
                self.grants_of_member.remove(member);
                None
            } else {
                let grants = Arc::new(grants);
                self.grants_of_member.set(member, Arc::clone(&grants));
                Some(grants)
            };
            self.update_bindings_of(member, |row| row.grants = grants.clone());
        }
    }

    /// Moves `member` in [`Snapshot::holders`] from the (type, action) pairs of its current
    /// grants to those of `grants`.
    fn rehold(&mut self, member: Num, grants: &MemberGrants) {
        let pairs = |lists: &MemberGrants| -> Vec<(Num, Num)> {
            lists.iter().map(|l| (l.type_key, l.action)).collect()
        };
        let old = self
            .grants_of_member
            .get(member)
            .map(|g| pairs(g))
            .unwrap_or_default();
        let new = pairs(grants);
        for pair in old.iter().filter(|p| !new.contains(p)) {
            if let Some(members) = self.holders.get_mut(pair) {
                members.remove(member, &self.member_names);
                if members.is_empty() {
                    self.holders.remove(pair);
                }
            }
        }
        for pair in new.iter().filter(|p| !old.contains(p)) {
            self.holders
                .entry(*pair)
                .or_default()
                .insert(member, &self.member_names);
        }
    }

    /// Changes the copies in every binding of `member`.
    fn update_bindings_of(&mut self, member: Num, change: impl Fn(&mut BindingRow)) {
        self.update_bindings(|s| &s.bindings_of_member, member, change);
    }

    /// Changes the copies in every binding `reverse` (`bindings_of_user` or
    /// `bindings_of_member`) lists for `n`.
    fn update_bindings(
        &mut self,
        reverse: fn(&Self) -> &Rows<OrdSet<Num>>,
        n: Num,
        change: impl Fn(&mut BindingRow),
    ) {
        let bindings: Vec<Num> = reverse(self)
            .get(n)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        for b in bindings {
            if let Some(row) = self.bindings.get_mut(b) {
                change(row);
            }
        }
    }

    /// A member's grants, computed from the member-roles, roles, role-permissions and
    /// permissions.
    fn grants_of(&self, member: Num) -> MemberGrants {
        let Some(member_roles) = self.roles_of_member.get(member) else {
            return MemberGrants::default();
        };
        let mut member_roles: Vec<Num> = member_roles.iter().copied().collect();
        member_roles.sort_by(|a, b| self.member_role_names.order(*a, *b));
        let mut lists: Vec<(Num, Num, Vec<GrantRow>)> = Vec::new();
        for mr_n in member_roles {
            let Some(mr) = self.member_roles.get(mr_n).filter(|mr| mr.active) else {
                continue;
            };
            let Some(role) = self.roles.get(mr.role).filter(|r| r.active) else {
                continue;
            };
            let Some(held) = self.permissions_of_role.get(mr.role) else {
                continue;
            };
            let mut held: Vec<(Num, Num)> = held
                .iter()
                .filter_map(|&rp| Some((self.role_permissions.get(rp)?.permission, rp)))
                .collect();
            held.sort_by(|a, b| {
                self.permission_names
                    .order(a.0, b.0)
                    .then_with(|| self.role_permission_names.order(a.1, b.1))
            });
            for (permission, _) in held {
                let Some(p) = self.permissions.get(permission) else {
                    continue;
                };
                // A scope this build does not know grants nothing.
                let (true, Some(scope)) = (p.active, p.scope) else {
                    continue;
                };
                let grant = GrantRow {
                    member_role_id: self.member_role_names.shared(mr_n),
                    member_role_space_id: mr.space_id.clone(),
                    role_id: self.role_names.shared(mr.role),
                    role_key: role.key.clone(),
                    role_space_id: role.space_id.clone(),
                    permission_id: self.permission_names.shared(permission),
                    scope,
                    anchor: mr.anchor,
                    condition: p.condition.clone(),
                };
                match lists
                    .iter_mut()
                    .find(|(t, a, _)| *t == p.type_key && *a == p.action)
                {
                    Some((_, _, grants)) => grants.push(grant),
                    None => lists.push((p.type_key, p.action, vec![grant])),
                }
            }
        }
        lists
            .into_iter()
            .map(|(type_key, action, grants)| GrantList {
                type_key,
                action,
                grants: grants.into_boxed_slice(),
            })
            .collect()
    }

    /// Group `n` as the engine sees it.
    fn group_facts(&self, n: Num) -> Option<GroupFacts<'_>> {
        self.groups.get(n).map(|g| GroupFacts {
            id: Some(Cow::Borrowed(&g.id)),
            path: Cow::Borrowed(&g.path),
            space_id: Some(Cow::Borrowed(&g.space_id)),
        })
    }

    /// The group with ID `id`, as the engine sees it.
    pub fn group<'a>(&'a self, id: &'a str) -> Option<GroupFacts<'a>> {
        self.group_names.get(id).and_then(|n| self.group_facts(n))
    }

    /// The space of the role with ID `id`.
    pub fn role_space(&self, id: &str) -> Option<&str> {
        let n = self.role_names.get(id)?;
        self.roles.get(n).map(|r| &*r.space_id)
    }

    /// A member's grants for (type key, action), as candidates.
    fn candidates_of(&self, member: Num, type_key: Num, action: Num) -> Vec<Candidate<'_>> {
        self.candidates_in(self.grants_of_member.get(member), type_key, action)
    }

    /// The grants for (type key, action) among a member's `grants`, as candidates.
    fn candidates_in<'a>(
        &'a self,
        grants: Option<&'a Arc<MemberGrants>>,
        type_key: Num,
        action: Num,
    ) -> Vec<Candidate<'a>> {
        let Some(list) = grant_list(grants.map(|g| &**g), type_key, action) else {
            return Vec::new();
        };
        list.grants
            .iter()
            .map(|g| Candidate {
                role_key: Cow::Borrowed(&g.role_key),
                role_id: Cow::Borrowed(&g.role_id),
                role_space_id: Cow::Borrowed(&g.role_space_id),
                permission_id: Cow::Borrowed(&g.permission_id),
                scope: g.scope,
                member_role_id: Cow::Borrowed(&g.member_role_id),
                member_role_space_id: Cow::Borrowed(&g.member_role_space_id),
                anchor_named: g.anchor.is_some(),
                anchor: g.anchor.and_then(|a| self.group_facts(a)),
                condition: g.condition.as_deref(),
            })
            .collect()
    }

    /// The member's active grants for (type key, action): member-roles in ID order, each
    /// role's permissions in ID order.
    pub fn candidates(&self, member_id: &str, type_key: &str, action: &str) -> Vec<Candidate<'_>> {
        match (
            self.member_names.get(member_id),
            self.type_keys.get(type_key),
            self.action_names.get(action),
        ) {
            (Some(member), Some(type_key), Some(action)) => {
                self.candidates_of(member, type_key, action)
            }
            _ => Vec::new(),
        }
    }

    /// The type named by key or ID, whatever its status: its row.
    fn named_type(&self, type_key_or_id: &str) -> Option<&TypeRow> {
        let n = match self.type_keys.get(type_key_or_id) {
            Some(key) => self.type_of_key.get(key).copied(),
            None => None,
        }
        .or_else(|| self.type_names.get(type_key_or_id))?;
        self.types.get(n)
    }

    /// The active type named by key or ID: its key's number.
    fn active_type(&self, type_key_or_id: &str) -> Option<Num> {
        self.named_type(type_key_or_id)
            .filter(|t| t.active)
            .map(|t| t.key)
    }

    /// Whether `type_key` is an active type with the action `action`: (type known, action known).
    pub fn registry(&self, type_key_or_id: &str, action: &str) -> (Option<&str>, bool) {
        match self.active_type(type_key_or_id) {
            Some(key) => {
                let known = self
                    .action_names
                    .get(action)
                    .is_some_and(|a| self.declares(key, a));
                (Some(self.type_keys.text(key)), known)
            }
            None => (None, false),
        }
    }

    /// The resource with ID `id`, else the first (by ID) whose external ID is `id`.
    fn resource(&self, type_key: Num, id: &str) -> Option<(Num, &ResourceRow)> {
        let n = match self.resource_by_id(type_key, id) {
            Some(n) => n,
            None => {
                let external = self.external_names.get(type_key, id)?;
                self.carriers.get(external)?.first()?
            }
        };
        Some((n, self.resources.get(n)?))
    }

    /// Resource `n`'s status, visibility and stored metadata, for conditions: from its row
    /// where usual, else from `resource_extras`.
    fn resource_attributes(
        &self,
        n: Num,
        row: &ResourceRow,
    ) -> (Option<&str>, Option<&str>, Option<&str>) {
        let extras = self.resource_extras.get(n);
        let text = |word: Word, unusual: fn(&ResourceExtras) -> Option<&Shared>| match word {
            Word::NONE => None,
            Word::ELSEWHERE => extras.and_then(unusual).map(|t| &**t),
            usual => usual.usual(),
        };
        (
            text(row.status, |e| e.status.as_ref()),
            text(row.visibility, |e| e.visibility.as_ref()),
            extras.and_then(|e| e.metadata.as_deref()),
        )
    }

    /// Whether the registry declares `action` for the type of key `type_key`.
    fn declares(&self, type_key: Num, action: Num) -> bool {
        self.actions
            .get(type_key)
            .is_some_and(|actions| actions.contains(&action))
    }

    /// The number of the resource of type key `type_key` whose ID is `id`, when it is known.
    fn resource_by_id(&self, type_key: Num, id: &str) -> Option<Num> {
        self.resource_names
            .get(type_key, id)
            .filter(|n| self.resources.get(*n).is_some())
    }

    /// The actor's rows: from the binding when it names the request's user and member (no
    /// other lookup), else found one by one so that the first missing one is named.
    fn actor(&self, req: &Request<'_>) -> Result<Actor<'_>, ResolveError> {
        let binding = self
            .binding_names
            .get(req.user_member_id)
            .and_then(|n| self.bindings.get(n));
        if let Some(binding) = binding
            && binding.user_id.is(req.user_id)
            && binding.member_id.is(req.member_id)
            && let (Some(user), Some(member)) = (&binding.user_row, &binding.member_row)
        {
            return Ok(Actor {
                user,
                member,
                binding,
            });
        }
        let user_n = self.user_names.get(req.user_id);
        let user = user_n
            .and_then(|n| self.users.get(n))
            .ok_or_else(|| not_found("user", req.user_id))?;
        let member_n = self.member_names.get(req.member_id);
        let member = member_n
            .and_then(|n| self.members.get(n))
            .ok_or_else(|| not_found("member", req.member_id))?;
        let binding = binding
            .filter(|b| Some(b.user) == user_n && Some(b.member) == member_n)
            .ok_or_else(|| not_found("user_member", req.user_member_id))?;
        Ok(Actor {
            user,
            member,
            binding,
        })
    }

    /// Resolves a managed-mode request. Unknown actor IDs, and an unknown resource of a known
    /// type and action, are `NotFound`; everything else becomes a fact the engine judges.
    pub fn resolve<'a>(
        &'a self,
        req: &Request<'a>,
        now: i64,
    ) -> Result<Resolved<'a>, ResolveError> {
        let actor = self.actor(req)?;
        let (user, member, binding) = (actor.user, actor.member, actor.binding);
        let (space_id, space) = if req.space_id.is_empty() || req.space_id == &*member.space_id {
            (&*member.space_id, member.space)
        } else {
            (
                req.space_id,
                self.space_names
                    .get(req.space_id)
                    .ok_or_else(|| not_found("space", req.space_id))?,
            )
        };
        let space_status = self
            .spaces
            .get(space)
            .ok_or_else(|| not_found("space", space_id))?;
        let type_key = self.active_type(req.resource_type);
        let action = self.action_names.get(req.action);
        let action_known = match (type_key, action) {
            (Some(key), Some(action)) => self.declares(key, action),
            _ => false,
        };
        let resource = match type_key {
            Some(key) => match self.resource(key, req.resource_id) {
                Some(found) => Some(found),
                None if action_known => return Err(not_found("resource", req.resource_id)),
                None => None,
            },
            None => None,
        };
        let target_space_id = resource.map(|(_, r)| self.space_names.text(r.space));
        let candidates = match (type_key, action) {
            (Some(key), Some(action)) if action_known => {
                self.candidates_in(binding.grants.as_ref(), key, action)
            }
            _ => Vec::new(),
        };
        let conditional = candidates.iter().any(|c| c.condition.is_some());
        let facts = Facts {
            actor: actor.facts(
                req.user_id,
                req.member_id,
                req.user_member_id,
                space_id,
                space_status.active,
            ),
            target: TargetFacts {
                resource_type: Cow::Borrowed(req.resource_type),
                resource_id: Cow::Borrowed(req.resource_id),
                space_id: Cow::Borrowed(target_space_id.unwrap_or(space_id)),
                group: resource
                    .and_then(|(_, r)| r.group)
                    .and_then(|g| self.group_facts(g)),
                owner_member_id: resource
                    .and_then(|(_, r)| r.owner)
                    .map(|owner| Cow::Borrowed(self.member_names.text(owner))),
            },
            action: Cow::Borrowed(req.action),
            resource_type_known: type_key.is_some(),
            action_known,
            candidates,
            now,
            // What conditions read, looked up only when a candidate has one.
            attributes: Attributes {
                stored: conditional.then(|| {
                    let (status, visibility, metadata) = resource
                        .map(|(n, r)| self.resource_attributes(n, r))
                        .unwrap_or_default();
                    Box::new(StoredAttributes {
                        resource_status: status.map(Cow::Borrowed),
                        resource_visibility: visibility.map(Cow::Borrowed),
                        action_risk_level: type_key
                            .zip(action)
                            .and_then(|pair| self.action_risk.get(&pair))
                            .map(|r| Cow::Borrowed(&**r)),
                        resource_metadata: metadata.map(Cow::Borrowed),
                        username: self
                            .username_of_user
                            .get(binding.user)
                            .map(|u| Cow::Borrowed(&**u)),
                        subject_metadata: [
                            self.user_metadata.get(binding.user),
                            self.member_metadata.get(binding.member),
                        ]
                        .map(|m| m.map(|m| Cow::Borrowed(&**m))),
                    })
                }),
                request: None,
            },
        };
        Ok(Resolved {
            facts,
            statuses: ActorStatuses {
                user_status: Cow::Borrowed(&user.text),
                member_status: Cow::Borrowed(&member.status.text),
                user_member_status: Cow::Borrowed(&binding.status.text),
                user_member_expires_at: binding.expires_at.as_deref().map(Cow::Borrowed),
                space_status: Cow::Borrowed(&space_status.text),
            },
            target_space_id,
            revision: self.revision,
        })
    }

    /// The number of resources indexed.
    pub fn resource_count(&self) -> usize {
        self.resources.present
    }
}

/// Builds a snapshot from facts (the benchmarks' and tests' entry point).
pub fn snapshot_of<S: AsRef<str>>(facts: impl IntoIterator<Item = Fact<S>>) -> Snapshot {
    let mut snapshot = Snapshot::default();
    snapshot.apply_all(facts);
    snapshot
}

/// Why the index cannot answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// It has not been loaded (yet, or the last load failed).
    #[error("the authorization index is not loaded ({0})")]
    NotLoaded(String),
}

/// The live index: the current snapshot, swapped atomically by the change feed's follower.
#[derive(Debug)]
pub struct AuthzIndex {
    current: ArcSwap<Snapshot>,
    /// Why it is not loaded; `None` once a load succeeded.
    unloaded: Mutex<Option<String>>,
    /// A load succeeded: readers check this instead of taking the lock.
    loaded: AtomicBool,
}

impl Default for AuthzIndex {
    fn default() -> Self {
        Self {
            current: ArcSwap::from_pointee(Snapshot::default()),
            unloaded: Mutex::new(Some("not started".to_owned())),
            loaded: AtomicBool::new(false),
        }
    }
}

impl AuthzIndex {
    /// An empty index, unloaded until [`AuthzIndex::install`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The snapshot to decide on, or why there is none. Lock-free once loaded.
    pub fn snapshot(&self) -> Result<Arc<Snapshot>, IndexError> {
        if self.loaded.load(Ordering::Acquire) {
            return Ok(self.current.load_full());
        }
        let why = self
            .unloaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| "not started".to_owned());
        Err(IndexError::NotLoaded(why))
    }

    /// Installs a full load made at feed revision `revision` (what it read is at least that
    /// new; the follower applies the changes after it next).
    pub fn install<S: AsRef<str>>(&self, loaded: impl IntoIterator<Item = Fact<S>>, revision: u64) {
        let mut next = Snapshot::empty_at(revision);
        next.apply_all(loaded);
        self.install_snapshot(next);
    }

    /// Installs a snapshot a full load built from [`Snapshot::empty_at`] its revision (a load
    /// that applies its sources as they arrive builds it itself).
    pub fn install_snapshot(&self, next: Snapshot) {
        self.current.store(Arc::new(next));
        *self
            .unloaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        self.loaded.store(true, Ordering::Release);
    }

    /// A load failed. A loaded index keeps its snapshot (the feed's staleness rule decides
    /// whether it may still answer); an unloaded one says why.
    pub fn load_failed(&self, why: String) {
        let mut unloaded = self
            .unloaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !self.loaded.load(Ordering::Acquire) {
            *unloaded = Some(why);
        }
    }

    /// Applies one committed change from the feed (its facts, at its revision): the next
    /// snapshot. The follower calls this in revision order, one change at a time.
    pub fn apply<S: AsRef<str>>(&self, revision: u64, facts: impl IntoIterator<Item = Fact<S>>) {
        if !self.loaded.load(Ordering::Acquire) {
            return;
        }
        let mut next = Snapshot::clone(&self.current.load());
        next.apply_all(facts);
        next.revision = revision;
        self.current.store(Arc::new(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::evaluate;
    use crate::{DenyCode, ResourceFact};

    #[test]
    fn a_lookup_with_a_limit_of_zero_still_makes_progress() {
        let snapshot = snapshot_of(finance());
        let request = Request {
            user_id: "user_alice",
            member_id: "member_fr",
            user_member_id: "um_alice",
            space_id: "space_acme",
            resource_type: "invoice",
            resource_id: "",
            action: "approve",
        };
        let lookup = ResourceLookup {
            request,
            after: None,
            limit: 0,
        };
        let page = snapshot.lookup_resources(&lookup, 1_800_000_000).unwrap();
        assert_eq!(
            (page.ids.as_slice(), page.more),
            (&["invoice_001".to_owned()][..], false)
        );
        let subjects = SubjectLookup {
            resource_type: "invoice",
            resource_id: "invoice_001",
            action: "approve",
            after: None,
            limit: 0,
        };
        let page = snapshot.lookup_subjects(&subjects, 1_800_000_000).unwrap();
        assert_eq!(page.subjects.len(), 1);
        assert!(!page.more);
    }

    mod sorted_ids {
        use super::*;
        use proptest::prelude::*;
        use std::collections::BTreeSet;

        proptest! {
            /// Through inserts and removals that split chunks and empty them, the chunks hold
            /// what an ordered set holds, in ID order, and `after` resumes after any ID.
            #[test]
            fn sorted_ids_hold_what_an_ordered_set_holds(
                changes in proptest::collection::vec((any::<bool>(), 0u32..3_000), 1..4_000),
                cursors in proptest::collection::vec(0u32..3_000, 1..8),
            ) {
                let mut names: Names<TypedKey> = Names::default();
                let text = |i: u32| format!("r{i:05}");
                // Numbered in a shuffled order, so numbers do not follow IDs.
                let numbers: Vec<Num> = (0..3_000u32)
                    .map(|i| (i * 7_919) % 3_000)
                    .map(|i| names.intern(0, &text(i)))
                    .collect();
                let mut ids = SortedNums::default();
                let mut expected = BTreeSet::new();
                for (i, &(add, r)) in changes.iter().enumerate() {
                    let n = names.get(0, &text(r)).unwrap();
                    // Through a clone now and then, so shared chunks are copied, not changed.
                    let listed = |ids: &SortedNums| -> Vec<String> {
                        ids.after(None, &names).map(str::to_owned).collect()
                    };
                    let held = (i % 97 == 0).then(|| (ids.clone(), listed(&ids)));
                    if add {
                        ids.insert(n, &names);
                        expected.insert(text(r));
                    } else {
                        ids.remove(n, &names);
                        expected.remove(&text(r));
                    }
                    if let Some((held, before)) = held {
                        prop_assert_eq!(listed(&held), before);
                    }
                }
                prop_assert!(ids.chunks.iter().all(|c| !c.is_empty() && c.len() <= SORTED_CHUNK));
                let all: Vec<String> = ids.after(None, &names).map(str::to_owned).collect();
                prop_assert_eq!(&all, &expected.iter().cloned().collect::<Vec<_>>());
                for cursor in cursors {
                    let after = text(cursor);
                    let rest: Vec<&str> = ids.after(Some(&after), &names).collect();
                    let want: Vec<&str> = expected
                        .range::<String, _>((std::ops::Bound::Excluded(&after), std::ops::Bound::Unbounded))
                        .map(String::as_str)
                        .collect();
                    prop_assert_eq!(rest, want);
                }
                prop_assert_eq!(numbers.len(), 3_000);
            }
        }
    }

    fn finance() -> Vec<Fact> {
        let s = |v: &str| v.to_owned();
        vec![
            Fact::User {
                id: s("user_alice"),
                status: s("active"),
                username: Some(s("alice@example.com")),
                metadata: None,
            },
            Fact::Space {
                id: s("space_acme"),
                status: s("active"),
            },
            Fact::Member {
                id: s("member_fr"),
                space_id: s("space_acme"),
                status: s("active"),
                metadata: None,
            },
            Fact::UserMember {
                id: s("um_alice"),
                user_id: s("user_alice"),
                member_id: s("member_fr"),
                status: s("active"),
                expires_at: None,
            },
            Fact::Group {
                id: s("group_finance"),
                space_id: s("space_acme"),
                path: s("finance"),
                status: s("active"),
            },
            Fact::Group {
                id: s("group_apac"),
                space_id: s("space_acme"),
                path: s("finance.apac"),
                status: s("active"),
            },
            Fact::ResourceType {
                id: s("rt_invoice"),
                key: s("invoice"),
                status: s("active"),
            },
            Fact::ResourceAction {
                resource_type: s("invoice"),
                key: s("approve"),
                risk_level: None,
            },
            Fact::Resource(ResourceFact {
                resource_type: s("invoice"),
                id: s("invoice_001"),
                external_id: s("INV-1"),
                space_id: s("space_acme"),
                group_id: Some(s("group_apac")),
                owner_member_id: None,
                status: s("active"),
                metadata: None,
                visibility: None,
            }),
            Fact::Role {
                id: s("role_fr"),
                space_id: s("space_acme"),
                key: s("finance_reviewer"),
                status: s("active"),
            },
            Fact::Permission {
                id: s("perm_approve"),
                resource: s("invoice"),
                action: s("approve"),
                scope: s("group_tree"),
                status: s("active"),
                condition: None,
            },
            Fact::RolePermission {
                id: s("rp_1"),
                role_id: s("role_fr"),
                permission_id: s("perm_approve"),
                deleted: false,
            },
            Fact::MemberRole {
                id: s("mr_1"),
                space_id: s("space_acme"),
                member_id: s("member_fr"),
                role_id: s("role_fr"),
                scope_anchor_group_id: Some(s("group_finance")),
                status: s("active"),
            },
        ]
    }

    fn request<'a>(resource_id: &'a str) -> Request<'a> {
        Request {
            user_id: "user_alice",
            member_id: "member_fr",
            user_member_id: "um_alice",
            space_id: "space_acme",
            resource_type: "invoice",
            resource_id,
            action: "approve",
        }
    }

    fn decide(index: &AuthzIndex, resource_id: &str) -> Option<DenyCode> {
        let snapshot = index.snapshot().unwrap();
        let resolved = snapshot.resolve(&request(resource_id), 0).unwrap();
        evaluate(&resolved.facts, false).deny_code
    }

    /// A committed change: its revision and facts.
    fn change(revision: u64, facts: Vec<Fact>) -> (u64, Vec<Fact>) {
        (revision, facts)
    }

    /// The follower's step: `change` applied to `index`.
    fn apply(index: &AuthzIndex, (revision, facts): (u64, Vec<Fact>)) {
        index.apply(revision, facts);
    }

    #[test]
    fn a_loaded_index_decides_and_follows_each_change() {
        let index = AuthzIndex::new();
        assert!(matches!(index.snapshot(), Err(IndexError::NotLoaded(_))));
        index.install(finance(), 7);
        assert_eq!(index.snapshot().unwrap().revision(), 7);
        assert_eq!(decide(&index, "invoice_001"), None);
        // By external ID too.
        assert_eq!(decide(&index, "INV-1"), None);
        apply(
            &index,
            change(
                8,
                vec![Fact::MemberRole {
                    id: "mr_1".into(),
                    space_id: "space_acme".into(),
                    member_id: "member_fr".into(),
                    role_id: "role_fr".into(),
                    scope_anchor_group_id: Some("group_finance".into()),
                    status: "revoked".into(),
                }],
            ),
        );
        assert_eq!(index.snapshot().unwrap().revision(), 8);
        assert_eq!(
            decide(&index, "invoice_001"),
            Some(DenyCode::NoMatchingPermission)
        );
        apply(
            &index,
            change(
                9,
                vec![Fact::RolePermission {
                    id: "rp_1".into(),
                    role_id: "role_fr".into(),
                    permission_id: "perm_approve".into(),
                    deleted: true,
                }],
            ),
        );
        assert!(
            index
                .snapshot()
                .unwrap()
                .candidates("member_fr", "invoice", "approve")
                .is_empty()
        );
    }

    /// What conditions read of a resource comes back exactly as its fact said, whether it is
    /// kept in the row (usual texts, no metadata) or beside it, and moving back to the usual
    /// leaves nothing beside the row.
    #[test]
    fn a_resource_s_condition_attributes_read_back_as_written_and_the_row_stays_small() {
        assert_eq!(std::mem::size_of::<Option<ResourceRow>>(), 28);
        let mut facts = finance();
        for fact in &mut facts {
            if let Fact::Permission { condition, .. } = fact {
                *condition = Some("resource.status != 'archived'".into());
            }
        }
        let index = AuthzIndex::new();
        index.install(facts, 1);
        let resource = |status: &str, visibility: Option<&str>, metadata: Option<&str>| {
            vec![Fact::Resource(ResourceFact {
                resource_type: "invoice".into(),
                id: "invoice_001".into(),
                external_id: "INV-1".into(),
                space_id: "space_acme".into(),
                group_id: Some("group_apac".into()),
                owner_member_id: None,
                status: status.into(),
                metadata: metadata.map(str::to_owned),
                visibility: visibility.map(str::to_owned),
            })]
        };
        let cases = [
            ("active", None, None, 0),
            ("archived", Some("space"), None, 0),
            ("on_hold", Some("space"), None, 1),
            ("active", Some("partners"), Some(r#"{"amount":5}"#), 1),
            ("active", Some("public"), Some("{}"), 0),
        ];
        for (revision, (status, visibility, metadata, extras)) in (2..).zip(cases) {
            apply(
                &index,
                change(revision, resource(status, visibility, metadata)),
            );
            let snapshot = index.snapshot().unwrap();
            let resolved = snapshot.resolve(&request("invoice_001"), 0).unwrap();
            let read = resolved.facts.attributes.stored();
            assert_eq!(read.resource_status.as_deref(), Some(status));
            assert_eq!(read.resource_visibility.as_deref(), visibility);
            assert_eq!(
                read.resource_metadata.as_deref(),
                metadata.filter(|m| *m != "{}")
            );
            assert_eq!(
                snapshot.resource_extras.present, extras,
                "{status} {visibility:?}"
            );
        }
    }

    /// The candidates computed at check time from the rows alone (no precomputed grants, no
    /// reverse index): the reference the precomputed grants must always equal.
    fn candidates_from_scratch<'a>(
        snapshot: &'a Snapshot,
        member_id: &str,
        type_key: &str,
        action: &str,
    ) -> Vec<Candidate<'a>> {
        let mut out = Vec::new();
        let Some(member) = snapshot.member_names.get(member_id) else {
            return out;
        };
        let all = |count: usize| 0..count as Num;
        let mut member_roles: Vec<(&str, &MemberRoleRow)> = all(snapshot.member_role_names.len())
            .filter_map(|n| {
                let row = snapshot.member_roles.get(n)?;
                (row.member == member).then(|| (snapshot.member_role_names.text(n), row))
            })
            .collect();
        member_roles.sort_by_key(|(id, _)| *id);
        for (mr_id, mr) in member_roles {
            if !mr.active {
                continue;
            }
            let Some(role) = snapshot.roles.get(mr.role).filter(|r| r.active) else {
                continue;
            };
            let mut held: Vec<(&str, &str, Num)> = all(snapshot.role_permission_names.len())
                .filter_map(|n| {
                    let rp = snapshot.role_permissions.get(n)?;
                    (rp.role == mr.role && !rp.deleted).then(|| {
                        (
                            snapshot.permission_names.text(rp.permission),
                            snapshot.role_permission_names.text(n),
                            rp.permission,
                        )
                    })
                })
                .collect();
            held.sort();
            for (permission_id, _, p) in held {
                let Some(p) = snapshot.permissions.get(p) else {
                    continue;
                };
                if !p.active
                    || snapshot.type_keys.text(p.type_key) != type_key
                    || snapshot.action_names.text(p.action) != action
                {
                    continue;
                }
                let Some(scope) = p.scope else { continue };
                out.push(Candidate {
                    role_key: Cow::Borrowed(&role.key),
                    role_id: Cow::Borrowed(snapshot.role_names.text(mr.role)),
                    role_space_id: Cow::Borrowed(&role.space_id),
                    permission_id: Cow::Borrowed(permission_id),
                    scope,
                    member_role_id: Cow::Borrowed(mr_id),
                    member_role_space_id: Cow::Borrowed(&mr.space_id),
                    anchor_named: mr.anchor.is_some(),
                    anchor: mr.anchor.and_then(|a| snapshot.group_facts(a)),
                    condition: None,
                });
            }
        }
        out
    }

    mod precomputed_grants {
        use super::*;
        use proptest::prelude::*;

        const MEMBERS: [&str; 3] = ["m0", "m1", "m2"];
        const ROLES: [&str; 3] = ["r0", "r1", "r2"];
        const PERMISSIONS: [&str; 4] = ["p0", "p1", "p2", "p3"];
        const TYPES: [&str; 2] = ["invoice", "contract"];
        const ACTIONS: [&str; 2] = ["read", "approve"];
        const SCOPES: [&str; 4] = ["group_tree", "self", "space", "galaxy"];
        const STATUSES: [&str; 2] = ["active", "disabled"];

        /// Any grant-shaped fact over a few IDs, so that facts keep hitting the same entities:
        /// member-roles move between members and roles, role-permissions between roles and
        /// permissions, permissions between (type, action), and everything flips status.
        fn fact() -> impl Strategy<Value = Fact> {
            let pick = |n: usize| 0..n;
            prop_oneof![
                (
                    pick(4),
                    pick(3),
                    pick(3),
                    pick(2),
                    proptest::option::of(pick(2))
                )
                    .prop_map(|(id, member, role, status, anchor)| {
                        Fact::MemberRole {
                            id: format!("mr{id}"),
                            space_id: "space".into(),
                            member_id: MEMBERS[member].into(),
                            role_id: ROLES[role].into(),
                            scope_anchor_group_id: anchor.map(|a| format!("g{a}")),
                            status: if status == 0 { "active" } else { "revoked" }.into(),
                        }
                    }),
                (pick(3), pick(2), pick(2)).prop_map(|(id, key, status)| Fact::Role {
                    id: ROLES[id].into(),
                    space_id: "space".into(),
                    key: format!("key{key}"),
                    status: STATUSES[status].into(),
                }),
                (pick(4), pick(2), pick(2), pick(4), pick(2)).prop_map(
                    |(id, ty, action, scope, status)| Fact::Permission {
                        id: PERMISSIONS[id].into(),
                        resource: TYPES[ty].into(),
                        action: ACTIONS[action].into(),
                        scope: SCOPES[scope].into(),
                        status: STATUSES[status].into(),
                        condition: None,
                    }
                ),
                (pick(5), pick(3), pick(4), any::<bool>()).prop_map(
                    |(id, role, permission, deleted)| Fact::RolePermission {
                        id: format!("rp{id}"),
                        role_id: ROLES[role].into(),
                        permission_id: PERMISSIONS[permission].into(),
                        deleted,
                    }
                ),
                (pick(2), pick(2)).prop_map(|(id, path)| Fact::Group {
                    id: format!("g{id}"),
                    space_id: "space".into(),
                    path: ["finance", "finance.apac"][path].into(),
                    status: "active".into(),
                }),
            ]
        }

        proptest! {
            #[test]
            fn always_equal_the_candidates_computed_from_scratch(
                changes in proptest::collection::vec(proptest::collection::vec(fact(), 1..4), 1..40)
            ) {
                let mut snapshot = Snapshot::default();
                for change in changes {
                    snapshot.apply_all(change);
                    prop_assert!(snapshot.unsettled.is_empty());
                    prop_assert!(snapshot.unlisted.in_group.is_empty());
                    prop_assert!(snapshot.unlisted.of_owner.is_empty());
                    for member in MEMBERS {
                        for ty in TYPES {
                            for action in ACTIONS {
                                prop_assert_eq!(
                                    snapshot.candidates(member, ty, action),
                                    candidates_from_scratch(&snapshot, member, ty, action),
                                    "{} {} {}", member, ty, action
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    mod incremental_equals_rebuilt {
        use super::*;
        use proptest::prelude::*;

        const TYPE_KEYS: [&str; 2] = ["invoice", "contract"];
        const ACTIONS: [&str; 2] = ["read", "approve"];
        const SCOPES: [&str; 5] = ["group_tree", "group", "self", "space", "galaxy"];
        const PATHS: [&str; 3] = ["a", "a.b", "c"];
        const EXPIRIES: [Option<&str>; 3] = [
            None,
            Some("2020-01-01T00:00:00Z"),
            Some("2099-01-01T00:00:00Z"),
        ];
        /// Usernames the users take in turn (one is the other user's ID).
        const USERNAMES: [&str; 3] = ["ann", "bo@example.com", "u0"];

        fn status(active: bool, inactive: &str) -> String {
            if active { "active" } else { inactive }.to_owned()
        }

        /// Any fact over a few IDs of every kind, so that changes keep hitting the same
        /// entities. What the sources guarantee holds: a type's key never changes (keys are
        /// unique in the registry), and no two users hold one username at once (see
        /// [`unique_usernames`]).
        fn fact() -> impl Strategy<Value = Fact> {
            let id =
                |prefix: &'static str, n: usize| (0..n).prop_map(move |i| format!("{prefix}{i}"));
            prop_oneof![
                (
                    id("u", 2),
                    any::<bool>(),
                    proptest::option::of(0..USERNAMES.len())
                )
                    .prop_map(|(id, a, name)| Fact::User {
                        id,
                        status: status(a, "disabled"),
                        username: name.map(|k| USERNAMES[k].to_owned()),
                        metadata: None,
                    }),
                (id("s", 2), any::<bool>()).prop_map(|(id, a)| Fact::Space {
                    id,
                    status: status(a, "disabled"),
                }),
                (id("m", 2), id("s", 2), any::<bool>()).prop_map(|(id, space_id, a)| {
                    Fact::Member {
                        id,
                        space_id,
                        status: status(a, "disabled"),
                        metadata: None,
                    }
                }),
                (id("b", 2), id("u", 2), id("m", 2), any::<bool>(), 0..3usize).prop_map(
                    |(id, user_id, member_id, a, e)| Fact::UserMember {
                        id,
                        user_id,
                        member_id,
                        status: status(a, "revoked"),
                        expires_at: EXPIRIES[e].map(str::to_owned),
                    }
                ),
                (id("g", 3), id("s", 2), 0..3usize).prop_map(|(id, space_id, p)| Fact::Group {
                    id,
                    space_id,
                    path: PATHS[p].into(),
                    status: "active".into(),
                }),
                (0..2usize, any::<bool>()).prop_map(|(t, a)| Fact::ResourceType {
                    id: format!("t{t}"),
                    key: TYPE_KEYS[t].into(),
                    status: status(a, "disabled"),
                }),
                (0..2usize, 0..2usize).prop_map(|(t, a)| Fact::ResourceAction {
                    resource_type: TYPE_KEYS[t].into(),
                    key: ACTIONS[a].into(),
                    risk_level: None,
                }),
                (
                    0..2usize,
                    id("r", 3),
                    id("e", 2),
                    id("s", 2),
                    proptest::option::of(id("g", 3)),
                    proptest::option::of(id("m", 2)),
                )
                    .prop_map(|(t, id, external_id, space_id, group_id, owner)| {
                        Fact::Resource(ResourceFact {
                            resource_type: TYPE_KEYS[t].into(),
                            id,
                            external_id,
                            space_id,
                            group_id,
                            owner_member_id: owner,
                            status: "active".into(),
                            metadata: None,
                            visibility: None,
                        })
                    }),
                (id("ro", 2), id("s", 2), 0..2usize, any::<bool>()).prop_map(
                    |(id, space_id, k, a)| Fact::Role {
                        id,
                        space_id,
                        key: format!("key{k}"),
                        status: status(a, "disabled"),
                    }
                ),
                (id("p", 3), 0..2usize, 0..2usize, 0..5usize, any::<bool>()).prop_map(
                    |(id, t, a, scope, active)| Fact::Permission {
                        id,
                        resource: TYPE_KEYS[t].into(),
                        action: ACTIONS[a].into(),
                        scope: SCOPES[scope].into(),
                        status: status(active, "disabled"),
                        condition: None,
                    }
                ),
                (id("rp", 4), id("ro", 2), id("p", 3), any::<bool>()).prop_map(
                    |(id, role_id, permission_id, deleted)| Fact::RolePermission {
                        id,
                        role_id,
                        permission_id,
                        deleted,
                    }
                ),
                (
                    id("mr", 4),
                    id("s", 2),
                    id("m", 2),
                    id("ro", 2),
                    proptest::option::of(id("g", 3)),
                    any::<bool>()
                )
                    .prop_map(|(id, space_id, member_id, role_id, anchor, a)| {
                        Fact::MemberRole {
                            id,
                            space_id,
                            member_id,
                            role_id,
                            scope_anchor_group_id: anchor,
                            status: status(a, "revoked"),
                        }
                    }),
            ]
        }

        /// A world where every entity of the universe exists and is active, so that most
        /// requests resolve and reach candidates; the generated changes then alter it.
        fn world() -> Vec<Fact> {
            let s = |v: &str| v.to_owned();
            let mut out = Vec::new();
            for (i, type_key) in TYPE_KEYS.into_iter().enumerate() {
                out.push(Fact::User {
                    id: format!("u{i}"),
                    status: s("active"),
                    username: Some(s(USERNAMES[i])),
                    metadata: None,
                });
                out.push(Fact::Space {
                    id: format!("s{i}"),
                    status: s("active"),
                });
                out.push(Fact::Member {
                    id: format!("m{i}"),
                    space_id: s("s0"),
                    status: s("active"),
                    metadata: None,
                });
                out.push(Fact::UserMember {
                    id: format!("b{i}"),
                    user_id: format!("u{i}"),
                    member_id: format!("m{i}"),
                    status: s("active"),
                    expires_at: None,
                });
                out.push(Fact::ResourceType {
                    id: format!("t{i}"),
                    key: s(type_key),
                    status: s("active"),
                });
                out.push(Fact::Role {
                    id: format!("ro{i}"),
                    space_id: s("s0"),
                    key: format!("key{i}"),
                    status: s("active"),
                });
                for action in ACTIONS {
                    out.push(Fact::ResourceAction {
                        resource_type: s(type_key),
                        key: s(action),
                        risk_level: None,
                    });
                }
            }
            for (g, path) in PATHS.iter().enumerate() {
                out.push(Fact::Group {
                    id: format!("g{g}"),
                    space_id: s("s0"),
                    path: s(path),
                    status: s("active"),
                });
            }
            for key in TYPE_KEYS {
                for r in 0..3 {
                    out.push(Fact::Resource(ResourceFact {
                        resource_type: s(key),
                        id: format!("r{r}"),
                        external_id: format!("e{}", r % 2),
                        space_id: s("s0"),
                        group_id: Some(format!("g{r}")),
                        owner_member_id: Some(format!("m{}", r % 2)),
                        status: s("active"),
                        metadata: None,
                        visibility: None,
                    }));
                }
            }
            for p in 0..3 {
                out.push(Fact::Permission {
                    id: format!("p{p}"),
                    resource: s(TYPE_KEYS[p % 2]),
                    action: s(ACTIONS[p / 2]),
                    scope: s(SCOPES[p]),
                    status: s("active"),
                    condition: None,
                });
            }
            for rp in 0..4 {
                out.push(Fact::RolePermission {
                    id: format!("rp{rp}"),
                    role_id: format!("ro{}", rp % 2),
                    permission_id: format!("p{}", rp % 3),
                    deleted: false,
                });
            }
            for mr in 0..4 {
                out.push(Fact::MemberRole {
                    id: format!("mr{mr}"),
                    space_id: s("s0"),
                    member_id: format!("m{}", mr % 2),
                    role_id: format!("ro{}", mr / 2),
                    scope_anchor_group_id: Some(format!("g{}", mr % 3)),
                    status: s("active"),
                });
            }
            out
        }

        /// Applies `world()` and then each change, as the follower does (through a clone of the
        /// snapshot, so shared parts are exercised), and calls `after_each` with the snapshot and
        /// each entity's latest fact, in the order of its last change, after every change.
        fn replay(
            changes: Vec<Vec<Fact>>,
            mut after_each: impl FnMut(&Snapshot, &[Fact]) -> Result<(), TestCaseError>,
        ) -> Result<(), TestCaseError> {
            let mut snapshot = Snapshot::default();
            let mut latest: Vec<Fact> = Vec::new();
            for change in unique_usernames(std::iter::once(world()).chain(changes)) {
                for fact in &change {
                    let key = entity(fact);
                    latest.retain(|f| entity(f) != key);
                    latest.push(fact.clone());
                }
                let mut next = snapshot.clone();
                next.apply_all(change);
                snapshot = next;
                after_each(&snapshot, &latest)?;
            }
            Ok(())
        }

        /// The changes with what the database's unique index guarantees: a user fact that
        /// claims a username another user holds at that point carries none instead.
        fn unique_usernames(changes: impl IntoIterator<Item = Vec<Fact>>) -> Vec<Vec<Fact>> {
            let mut held: std::collections::BTreeMap<String, String> = Default::default();
            let mut out: Vec<Vec<Fact>> = changes.into_iter().collect();
            for fact in out.iter_mut().flatten() {
                if let Fact::User { id, username, .. } = fact {
                    if username
                        .as_ref()
                        .is_some_and(|name| held.iter().any(|(u, n)| n == name && u != id))
                    {
                        *username = None;
                    }
                    match username {
                        Some(name) => held.insert(id.clone(), name.clone()),
                        None => held.remove(id),
                    };
                }
            }
            out
        }

        /// Which entity a fact is the state of.
        fn entity(fact: &Fact) -> String {
            match fact {
                Fact::ResourceAction {
                    resource_type, key, ..
                } => {
                    format!("action {resource_type} {key}")
                }
                Fact::Resource(ResourceFact {
                    resource_type, id, ..
                }) => format!("resource {resource_type} {id}"),
                Fact::User { id, .. }
                | Fact::Space { id, .. }
                | Fact::Member { id, .. }
                | Fact::UserMember { id, .. }
                | Fact::Group { id, .. }
                | Fact::ResourceType { id, .. }
                | Fact::Role { id, .. }
                | Fact::Permission { id, .. }
                | Fact::RolePermission { id, .. }
                | Fact::MemberRole { id, .. } => format!("{} {id}", fact.kind()),
            }
        }

        /// Every request over the universe: actors that match their binding and ones that do
        /// not, every space, type (by key and by ID), resource (by ID and external ID) and
        /// action.
        fn requests() -> Vec<Request<'static>> {
            let mut out = Vec::new();
            for user_member_id in ["b0", "b1"] {
                for (user_id, member_id) in [("u0", "m0"), ("u1", "m1"), ("u0", "m1")] {
                    for space_id in ["", "s0", "s1"] {
                        for resource_type in ["invoice", "contract", "t1"] {
                            for resource_id in ["r0", "r1", "e0"] {
                                for action in ACTIONS {
                                    out.push(Request {
                                        user_id,
                                        member_id,
                                        user_member_id,
                                        space_id,
                                        resource_type,
                                        resource_id,
                                        action,
                                    });
                                }
                            }
                        }
                    }
                }
            }
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]
            #[test]
            fn an_index_changed_fact_by_fact_decides_like_one_rebuilt_from_scratch(
                changes in proptest::collection::vec(proptest::collection::vec(fact(), 1..4), 1..30)
            ) {
                let requests = requests();
                replay(changes, |incremental, latest| {
                    let rebuilt = snapshot_of(latest.to_vec());
                    decide_alike(incremental, &rebuilt, &requests)?;
                    map_alike(incremental, &rebuilt)
                })?;
            }

            /// A full load applies its sources as they arrive: in any order, in any number of
            /// parts, it must build the index applying everything at once builds.
            #[test]
            fn a_load_applied_in_any_order_and_in_parts_decides_like_one_applied_at_once(
                (shuffled, cuts) in (
                    Just(world()).prop_shuffle(),
                    proptest::collection::vec(any::<proptest::sample::Index>(), 0..4),
                )
            ) {
                let at_once = snapshot_of(world());
                let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(shuffled.len())).collect();
                cuts.sort_unstable();
                let mut parts = Snapshot::empty_at(7);
                let mut start = 0;
                for end in cuts.into_iter().chain([shuffled.len()]) {
                    parts.apply_all(shuffled[start..end].iter().cloned());
                    start = end;
                }
                prop_assert_eq!(parts.revision(), 7);
                decide_alike(&parts, &at_once, &requests())?;
                map_alike(&parts, &at_once)?;
            }
        }

        /// Every user, binding and resource of the universe maps alike on `a` and on `b`: users
        /// by ID and username, bindings by user, member and ID (at two instants, either side of
        /// an expiry), resources to their names.
        fn map_alike(a: &Snapshot, b: &Snapshot) -> Result<(), TestCaseError> {
            for name in ["u0", "u1", "u2", "ann", "bo@example.com", "nobody"] {
                prop_assert_eq!(a.user_named(name), b.user_named(name), "{}", name);
            }
            for now in [1_500_000_000, 1_800_000_000] {
                for user in ["u0", "u1", "u2"] {
                    prop_assert_eq!(a.username_of(user), b.username_of(user), "{}", user);
                    prop_assert_eq!(a.user_bindings(user, now), b.user_bindings(user, now));
                }
                for member in ["m0", "m1", "m2"] {
                    prop_assert_eq!(
                        a.member_bindings(member, now),
                        b.member_bindings(member, now)
                    );
                }
                for binding in ["b0", "b1", "b2"] {
                    prop_assert_eq!(a.binding_view(binding, now), b.binding_view(binding, now));
                }
            }
            for resource_type in ["invoice", "contract", "t0", "t1"] {
                for id in ["r0", "r1", "r2", "e0", "e1"] {
                    prop_assert_eq!(
                        a.resource_name(resource_type, id),
                        b.resource_name(resource_type, id),
                        "{} {}",
                        resource_type,
                        id
                    );
                }
            }
            Ok(())
        }

        /// Every request resolves to the same facts, statuses and decision on `a` as on `b`.
        fn decide_alike(
            a: &Snapshot,
            b: &Snapshot,
            requests: &[Request<'_>],
        ) -> Result<(), TestCaseError> {
            for request in requests {
                match (
                    a.resolve(request, 1_800_000_000),
                    b.resolve(request, 1_800_000_000),
                ) {
                    (Ok(a), Ok(b)) => {
                        prop_assert_eq!(&a.facts, &b.facts, "{:?}", request);
                        prop_assert_eq!(&a.statuses, &b.statuses, "{:?}", request);
                        prop_assert_eq!(a.target_space_id, b.target_space_id);
                        prop_assert_eq!(
                            evaluate(&a.facts, true).deny_code,
                            evaluate(&b.facts, true).deny_code
                        );
                    }
                    (a, b) => prop_assert_eq!(a.err(), b.err(), "{:?}", request),
                }
            }
            Ok(())
        }

        /// A change that applies one resource twice, moving it to another group and owner in
        /// between, lists it only where its last fact puts it (what the change listed of it
        /// is listed before it moves, then taken out).
        #[test]
        fn a_resource_applied_twice_in_one_change_is_listed_only_where_its_last_fact_puts_it() {
            let resource = |id: &str, group: &str, owner: &str| {
                Fact::Resource(ResourceFact {
                    resource_type: "invoice".to_owned(),
                    id: id.to_owned(),
                    external_id: format!("e_{id}"),
                    space_id: "s0".to_owned(),
                    group_id: Some(group.to_owned()),
                    owner_member_id: Some(owner.to_owned()),
                    status: "active".to_owned(),
                    metadata: None,
                    visibility: None,
                })
            };
            let stays = resource("r1", "g1", "m1");
            let mut changed = Snapshot::empty_at(1);
            changed.apply_all([
                stays.clone(),
                resource("r2", "g1", "m1"),
                resource("r2", "g2", "m2"),
            ]);
            let rebuilt = snapshot_of([stays.clone(), resource("r2", "g2", "m2")]);
            assert_eq!(lookup_indexes(&changed), lookup_indexes(&rebuilt));
            // And in a later change, moved back and forth again.
            changed.apply_all([resource("r2", "g1", "m1"), resource("r2", "g3", "m2")]);
            let rebuilt = snapshot_of([stays, resource("r2", "g3", "m2")]);
            assert_eq!(lookup_indexes(&changed), lookup_indexes(&rebuilt));
        }

        /// One list of a lookup index, as text: (index, type key, space/group/member, IDs).
        type IndexedAs = (String, String, String, Vec<String>);

        /// The lookup indexes as text, comparable between snapshots that numbered IDs in
        /// different orders: (index, type key, space/group/member) → resource IDs in order, and
        /// the groups in path order.
        fn lookup_indexes(s: &Snapshot) -> (Vec<IndexedAs>, Vec<String>) {
            let mut out = Vec::new();
            for ((type_key, n), ids) in &s.resources_in_space {
                assert!(
                    ids.chunks
                        .iter()
                        .all(|c| !c.is_empty() && c.len() <= SORTED_CHUNK)
                );
                out.push((
                    "space".to_owned(),
                    s.type_keys.text(*type_key).to_owned(),
                    s.space_names.text(*n).to_owned(),
                    ids.after(None, &s.resource_names)
                        .map(str::to_owned)
                        .collect(),
                ));
            }
            let group_ids: Vec<&str> = (0..s.group_names.len() as Num)
                .map(|n| s.group_names.text(n))
                .collect();
            let owner_ids: Vec<&str> = (0..s.member_names.len() as Num)
                .map(|n| s.member_names.text(n))
                .collect();
            for (name, rows, ids) in [
                ("group", &s.resources_in_group, group_ids),
                ("owner", &s.resources_of_owner, owner_ids),
            ] {
                for (n, id) in ids.iter().enumerate() {
                    for (type_key, list) in rows.get(n as Num).map(|r| &*r.0).unwrap_or_default() {
                        out.push((
                            name.to_owned(),
                            s.type_keys.text(*type_key).to_owned(),
                            (*id).to_owned(),
                            list.iter()
                                .map(|r| s.resource_names.text(*r).to_owned())
                                .collect(),
                        ));
                    }
                }
            }
            out.sort();
            // Groups of one path sort by number, which differs between the two: compare sorted.
            let mut groups: Vec<String> = s
                .groups_by_path
                .iter()
                .map(|(space, path, g)| {
                    format!(
                        "{} {path} {}",
                        s.space_names.text(*space),
                        s.group_names.text(*g)
                    )
                })
                .collect();
            groups.sort();
            (out, groups)
        }

        /// Pages through a lookup, `limit` at a time: `page` answers the page after the last
        /// item found (its items and whether more follow). Every page holds at most `limit`, a
        /// page that says more follow is full, and the items come strictly in order across pages
        /// (a page that repeats one fails the test, rather than looping).
        fn every_page<T: Ord + Clone + std::fmt::Debug>(
            limit: usize,
            mut page: impl FnMut(Option<&T>) -> Result<(Vec<T>, bool), ResolveError>,
        ) -> Result<Result<Vec<T>, ResolveError>, TestCaseError> {
            let mut found: Vec<T> = Vec::new();
            loop {
                let (items, more) = match page(found.last()) {
                    Ok(page) => page,
                    Err(e) => return Ok(Err(e)),
                };
                prop_assert!(items.len() <= limit);
                prop_assert!(!more || items.len() == limit);
                let before = found.len();
                found.extend(items);
                prop_assert!(
                    found[before.saturating_sub(1)..]
                        .windows(2)
                        .all(|w| w[0] < w[1]),
                    "{:?}",
                    found
                );
                if !more {
                    return Ok(Ok(found));
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            /// An action lookup finds exactly the actions whose check allows, checking each
            /// action any fact ever named, and errs exactly when those checks do.
            #[test]
            fn an_action_lookup_finds_exactly_the_actions_a_check_allows(
                changes in proptest::collection::vec(proptest::collection::vec(fact(), 1..4), 0..20),
            ) {
                let mut snapshot = Snapshot::default();
                for change in std::iter::once(world()).chain(changes) {
                    snapshot.apply_all(change);
                    for request in requests().iter().filter(|r| r.action == ACTIONS[0]) {
                        let mut allowed = Vec::new();
                        let mut refused = None;
                        for action in ACTIONS.into_iter().chain(["unknown"]) {
                            match snapshot.resolve(&Request { action, ..*request }, 1_800_000_000) {
                                Ok(resolved) if evaluate(&resolved.facts, false).allow() => {
                                    allowed.push(action.to_owned());
                                }
                                Ok(_) => {}
                                Err(e) => refused = Some(e),
                            }
                        }
                        allowed.sort();
                        match (snapshot.lookup_actions(request, 1_800_000_000), refused) {
                            (Ok(found), None) => prop_assert_eq!(found, allowed, "{:?}", request),
                            (Err(e), Some(refused)) => prop_assert_eq!(e, refused),
                            (found, refused) => {
                                prop_assert!(false, "{:?}: {:?}, checks {:?}", request, found, refused)
                            }
                        }
                    }
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]
            /// A subject lookup, page by page, finds exactly the bindings whose actor a check
            /// (in the member's own space) allows, checking every binding one by one; and an
            /// index changed fact by fact lists the holders of each (type, action) one rebuilt
            /// from scratch lists.
            #[test]
            fn a_subject_lookup_finds_exactly_who_a_check_allows(
                changes in proptest::collection::vec(proptest::collection::vec(fact(), 1..4), 0..20),
                limit in 1usize..4,
            ) {
                replay(changes, |snapshot, latest| {
                    let rebuilt = snapshot_of(latest.to_vec());
                    let holders = |s: &Snapshot| {
                        let mut out: Vec<(String, String, Vec<String>)> = s
                            .holders
                            .iter()
                            .map(|((t, a), members)| {
                                (
                                    s.type_keys.text(*t).to_owned(),
                                    s.action_names.text(*a).to_owned(),
                                    members.after(None, &s.member_names).map(str::to_owned).collect(),
                                )
                            })
                            .collect();
                        out.sort();
                        out
                    };
                    prop_assert_eq!(holders(snapshot), holders(&rebuilt));
                    let bindings: Vec<(&str, &str, &str)> = latest
                        .iter()
                        .filter_map(|f| match f {
                            Fact::UserMember { id, user_id, member_id, .. } => {
                                Some((id.as_str(), user_id.as_str(), member_id.as_str()))
                            }
                            _ => None,
                        })
                        .collect();
                    for resource_type in ["invoice", "contract", "t1"] {
                        for resource_id in ["r0", "r1", "r2", "e1"] {
                            for action in ACTIONS {
                                let mut allowed: Vec<Subject> = Vec::new();
                                for &(binding, user, member) in &bindings {
                                    let request = Request {
                                        user_id: user,
                                        member_id: member,
                                        user_member_id: binding,
                                        space_id: "",
                                        resource_type,
                                        resource_id,
                                        action,
                                    };
                                    if let Ok(resolved) = snapshot.resolve(&request, 1_800_000_000)
                                        && evaluate(&resolved.facts, false).allow()
                                    {
                                        allowed.push(Subject {
                                            member_id: member.to_owned(),
                                            user_member_id: binding.to_owned(),
                                            user_id: user.to_owned(),
                                        });
                                    }
                                }
                                allowed.sort();
                                let lookup = SubjectLookup {
                                    resource_type,
                                    resource_id,
                                    action,
                                    after: None,
                                    limit,
                                };
                                let pages = every_page(limit, |last: Option<&Subject>| {
                                    let after = last
                                        .map(|s| (s.member_id.as_str(), s.user_member_id.as_str()));
                                    snapshot
                                        .lookup_subjects(&SubjectLookup { after, ..lookup }, 1_800_000_000)
                                        .map(|page| {
                                            assert_eq!(page.revision, snapshot.revision());
                                            (page.subjects, page.more)
                                        })
                                })?;
                                match pages {
                                    Ok(found) => prop_assert_eq!(
                                        found,
                                        allowed,
                                        "{} {} {}",
                                        resource_type,
                                        resource_id,
                                        action
                                    ),
                                    // Only a resource a check cannot find, which nobody may reach.
                                    Err(ResolveError::NotFound { entity: "resource", .. }) => {
                                        prop_assert!(allowed.is_empty());
                                    }
                                    Err(e) => prop_assert!(false, "{:?}", e),
                                }
                            }
                        }
                    }
                    Ok(())
                })?;
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]
            /// A lookup, page by page, finds exactly the resources a check allows, checking
            /// every resource of the type one by one; and an index changed fact by fact holds
            /// the lookup indexes one rebuilt from scratch holds.
            #[test]
            fn a_lookup_finds_exactly_what_checking_every_resource_allows(
                changes in proptest::collection::vec(proptest::collection::vec(fact(), 1..4), 0..20),
                limit in 1usize..4,
            ) {
                replay(changes, |snapshot, latest| {
                    prop_assert_eq!(
                        lookup_indexes(snapshot),
                        lookup_indexes(&snapshot_of(latest.to_vec()))
                    );
                    for request in requests().iter().filter(|r| r.resource_id == "r0") {
                        let key = match request.resource_type {
                            "t1" => TYPE_KEYS[1],
                            key => key,
                        };
                        let mut every: Vec<&str> = latest
                            .iter()
                            .filter_map(|f| match f {
                                Fact::Resource(ResourceFact { resource_type, id, .. }) if resource_type == key => {
                                    Some(id.as_str())
                                }
                                _ => None,
                            })
                            .collect();
                        every.sort_unstable();
                        let mut allowed = Vec::new();
                        let mut refused = None;
                        for id in every {
                            match snapshot.resolve(&Request { resource_id: id, ..*request }, 1_800_000_000) {
                                Ok(resolved) => {
                                    if evaluate(&resolved.facts, false).allow() {
                                        allowed.push(id.to_owned());
                                    }
                                }
                                Err(e) => refused = Some(e),
                            }
                        }
                        let lookup = ResourceLookup {
                            request: *request,
                            after: None,
                            limit,
                        };
                        let pages = every_page(limit, |last: Option<&String>| {
                            snapshot
                                .lookup_resources(
                                    &ResourceLookup { after: last.map(String::as_str), ..lookup },
                                    1_800_000_000,
                                )
                                .map(|page| {
                                    assert_eq!(page.revision, snapshot.revision());
                                    (page.ids, page.more)
                                })
                        })?;
                        match (pages, refused) {
                            (Ok(found), None) => prop_assert_eq!(found, allowed, "{:?}", request),
                            (Err(e), Some(refused)) => prop_assert_eq!(e, refused),
                            // No resource of the type to check: the lookup may still refuse an
                            // unknown actor.
                            (Err(_), None) if allowed.is_empty() => {}
                            (found, refused) => prop_assert!(
                                false,
                                "{:?}: lookup {:?}, checks {:?}",
                                request,
                                found,
                                refused
                            ),
                        }
                    }
                    Ok(())
                })?;
            }
        }
    }

    #[test]
    fn a_reader_keeps_its_snapshot_while_a_writer_swaps_in_the_next() {
        let index = AuthzIndex::new();
        index.install(finance(), 1);
        let held = index.snapshot().unwrap();
        apply(
            &index,
            change(
                2,
                vec![Fact::User {
                    id: "user_alice".into(),
                    status: "disabled".into(),
                    username: Some("alice@example.com".into()),
                    metadata: None,
                }],
            ),
        );
        let old = held.resolve(&request("invoice_001"), 0).unwrap();
        assert!(old.facts.actor.user_active);
        assert_eq!(
            decide(&index, "invoice_001"),
            Some(DenyCode::ActorUserInactive)
        );
    }

    #[test]
    fn changes_before_the_first_load_are_ignored_and_changes_after_it_apply_on_top() {
        let index = AuthzIndex::new();
        // Before the first load there is nothing to apply to: the load reads this state.
        apply(
            &index,
            change(
                1,
                vec![Fact::User {
                    id: "user_alice".into(),
                    status: "disabled".into(),
                    username: Some("alice@example.com".into()),
                    metadata: None,
                }],
            ),
        );
        assert!(index.snapshot().is_err());
        index.install(finance(), 4);
        assert_eq!(decide(&index, "invoice_001"), None);
        // A change the load did not see (committed after the head it was made at).
        apply(
            &index,
            change(
                5,
                vec![Fact::Space {
                    id: "space_acme".into(),
                    status: "disabled".into(),
                }],
            ),
        );
        assert_eq!(decide(&index, "invoice_001"), Some(DenyCode::SpaceInactive));
        assert_eq!(index.snapshot().unwrap().revision(), 5);
    }

    #[test]
    fn names_stay_numbered_through_merges_and_older_copies_keep_their_view() {
        // Loaded alone: straight into the flat table.
        let mut names = Names::<Key>::default();
        for i in 0..3_000 {
            assert_eq!(names.intern(&format!("id_{i}")), i);
        }
        assert!(names.recent.is_empty());
        // Shared with a published copy: new names go to the recent map until it holds an
        // eighth of the table (or 1,024), which is then merged into a new table of this copy's
        // own (the published copy keeps the old one), so later names go straight in. Every
        // name keeps its number throughout.
        let published = names.clone();
        let mut merges = 0;
        for i in 3_000..9_000 {
            let before = Arc::as_ptr(&names.settled);
            assert_eq!(names.intern(&format!("id_{i}")), i);
            if Arc::as_ptr(&names.settled) != before {
                merges += 1;
            }
            // Interning again finds it, wherever it sits.
            assert_eq!(names.intern(&format!("id_{i}")), i);
        }
        assert_eq!(merges, 1);
        assert!(names.recent.is_empty());
        for i in 0..9_000 {
            assert_eq!(names.get(&format!("id_{i}")), Some(i));
            assert_eq!(names.text(i), format!("id_{i}"));
        }
        // The published copy is as it was.
        assert_eq!(published.get("id_2999"), Some(2_999));
        assert_eq!(published.get("id_3000"), None);
        assert_eq!(published.len(), 3_000);
        // A key too long to hold inline works the same.
        let long = "x".repeat(INLINE + 10);
        let n = names.intern(&long);
        assert_eq!(names.get(&long), Some(n));
        assert_eq!(names.get(&long[..INLINE]), None);
    }

    #[test]
    fn numbers_compare_as_their_ids_in_order_and_out_of_it() {
        let mut names = Names::<Key>::default();
        for id in ["a1", "a2", "b"] {
            names.intern(id);
        }
        assert!(names.in_order);
        // Interning a known ID gives no number and keeps the order.
        names.intern("a1");
        assert!(names.in_order);
        assert!(names.before(0, 2) && !names.before(2, 0));
        // One ID that sorts before its predecessor: numbers no longer tell, the texts do.
        let late = names.intern("a15");
        assert!(!names.in_order);
        assert!(names.before(0, late) && names.before(late, 1) && !names.before(1, late));
        assert_eq!(names.order(2, late), std::cmp::Ordering::Greater);
        assert_eq!(names.order(late, late), std::cmp::Ordering::Equal);
        // It stays off: these arrive in order again, and "a15" is still out of place.
        let c = names.intern("c");
        assert!(!names.in_order);
        assert!(names.before(late, c));
    }

    #[test]
    fn a_chunked_array_copies_on_write_across_pages() {
        let mut rows = Rows::<u32>::default();
        for n in (0..10_000).step_by(3) {
            rows.set(n, n);
        }
        let published = rows.clone();
        rows.set(9_999, 1);
        rows.set(4_096, 7);
        rows.remove(3);
        assert_eq!(published.get(9_999), Some(&9_999));
        assert_eq!(published.get(4_096), None);
        assert_eq!(published.get(3), Some(&3));
        assert_eq!(rows.get(9_999), Some(&1));
        assert_eq!(rows.get(4_096), Some(&7));
        assert_eq!(rows.get(3), None);
        assert_eq!(rows.get(20_000), None);
        assert_eq!(published.present, 3_334);
        assert_eq!(rows.present, 3_334);
    }

    #[test]
    fn a_failed_load_explains_an_unloaded_index_and_keeps_a_loaded_one() {
        let index = AuthzIndex::new();
        index.load_failed("database down".into());
        assert_eq!(
            index.snapshot().unwrap_err(),
            IndexError::NotLoaded("database down".into())
        );
        index.install(finance(), 3);
        index.load_failed("database down again".into());
        assert_eq!(index.snapshot().unwrap().revision(), 3);
    }

    #[test]
    fn unknown_ids_are_not_found_and_unknown_registry_entries_are_facts() {
        let snapshot = snapshot_of(finance());
        let missing = |r: Request<'_>| snapshot.resolve(&r, 0).unwrap_err();
        assert_eq!(
            missing(Request {
                user_id: "user_nobody",
                ..request("invoice_001")
            }),
            not_found("user", "user_nobody")
        );
        assert_eq!(
            missing(request("invoice_999")),
            not_found("resource", "invoice_999")
        );
        let unknown_action = snapshot
            .resolve(
                &Request {
                    action: "shred",
                    ..request("invoice_999")
                },
                0,
            )
            .unwrap();
        assert!(unknown_action.facts.resource_type_known);
        assert!(!unknown_action.facts.action_known);
        // The type may be named by its ID.
        let by_id = snapshot
            .resolve(
                &Request {
                    resource_type: "rt_invoice",
                    ..request("invoice_001")
                },
                0,
            )
            .unwrap();
        assert_eq!(by_id.facts.candidates.len(), 1);
    }
}
