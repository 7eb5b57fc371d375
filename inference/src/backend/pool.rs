//! A persistent worker pool for the CPU backend: `n - 1` threads that live as long as the
//! [`Pool`], spin briefly and then park between jobs, and are woken for each matrix product.
//!
//! Natively the threads are `std::thread`s. In the browser's threaded build (wasm32 with the
//! `atomics` target feature: shared memory; see ARCHITECTURE.md, "Threads in the browser")
//! `std::thread::spawn` does not exist, so the embedder installs a [`Spawner`] with
//! [`set_spawner`] (the engine worker starts a nested Web Worker on the same module and memory
//! that runs the closure); Mutex, Condvar and the atomics are std's there too. One pool then
//! serves every session of that thread ([`Pool::shared`]): Web Workers are costly to start.
//!
//! No `unsafe`: a job owns everything it reads (the weight [`Bytes`] are reference counted and the
//! activations are copied in, which is small next to the product itself), and each thread writes
//! its chunks' rows into buffers of its own, kept from job to job, which the caller copies out.
//! The rows are cut into a few chunks per thread; each thread claims its own from a counter of
//! its own and then helps with the others' unclaimed ones, so a worker the OS has not scheduled
//! (a busy machine) delays nothing.
//! A row is always computed whole, by one thread, with the same kernel, so the results do not
//! depend on the thread count.

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
#[cfg(not(target_arch = "wasm32"))]
use std::time::{Duration, Instant};

use super::cpu::{
    attention, attention_unit, attention_units, AttnShape, GateAct, Prod, QUERY_BLOCK,
};
use crate::model::kv_cache::{self, KvRows};
use crate::model::{Bytes, QTensor};
use crate::quant::{self, Activations, GgmlType};

/// How long an idle worker (or the waiting caller) spins before it parks.
#[cfg(not(target_arch = "wasm32"))]
const SPIN: Duration = Duration::from_micros(300);

/// wasm32 has no clock in std (`Instant::now` panics there): spin a number of polls instead, of
/// the order of the native 300 µs (a poll is an atomic load, about a nanosecond).
#[cfg(target_arch = "wasm32")]
const SPIN_POLLS: u32 = 200_000;

/// A bounded spin: `spinning()` is true until the spin time is over.
struct Spin {
    #[cfg(not(target_arch = "wasm32"))]
    start: Instant,
    #[cfg(target_arch = "wasm32")]
    polls: u32,
}

impl Spin {
    fn new() -> Spin {
        Spin {
            #[cfg(not(target_arch = "wasm32"))]
            start: Instant::now(),
            #[cfg(target_arch = "wasm32")]
            polls: 0,
        }
    }

    fn spinning(&mut self) -> bool {
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.start.elapsed() < SPIN
        }
        #[cfg(target_arch = "wasm32")]
        {
            self.polls = self.polls.saturating_add(1);
            self.polls < SPIN_POLLS
        }
    }
}

/// Starts a pool worker: runs the closure on a new thread of this process and returns true, or
/// returns false when no thread could be started (the pool then has fewer threads).
pub type Spawner = fn(Box<dyn FnOnce() + Send>) -> bool;

static SPAWNER: OnceLock<Spawner> = OnceLock::new();

/// Install how pool workers are started where `std::thread::spawn` cannot (the browser's
/// threaded build). The first call wins; without one, std threads are used.
pub fn set_spawner(spawn: Spawner) {
    let _ = SPAWNER.set(spawn);
}

/// A value on its own cache line (128 bytes: two 64-byte lines, as adjacent-line prefetchers
/// pull pairs), so that threads writing neighbouring values do not take the line from each
/// other. On wasm32 the linear memory is the host's memory, so the same holds there.
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Work cut into chunks that the caller and the workers claim one at a time. Thread `s` of `T`
/// owns the `s`-th run of `⌈chunks / T⌉` consecutive chunks (consecutive rows: its reads of a
/// product's weights are one stream, where every `T`-th chunk began a new one for the memory
/// prefetchers at each chunk) and claims them in order from its own counter, on its own cache
/// line (a claim is then an uncontended atomic, where one shared counter moved its line between
/// the cores at every claim, a few hundred ns each on a VM); a thread out of chunks takes those
/// of the others that are still unclaimed, so a worker the OS has not scheduled yet, or one that
/// is held up, delays nothing.
struct Job {
    work: Work,
    /// Chunks in all.
    chunks: usize,
    /// Per thread: how many of its own chunks are claimed (chunk `s·⌈chunks / T⌉ + k` is the
    /// k-th).
    claimed: Vec<Padded<AtomicUsize>>,
    /// Chunks whose output is written (in their thread's [`Outputs`]): each thread adds its
    /// count once, when it runs out.
    finished: Padded<AtomicUsize>,
    /// The pool generation that announced this job (its threads' [`Outputs`] carry it).
    id: u64,
    /// The first panic of a chunk (on any thread): the chunk still counts as finished, so the
    /// caller stops waiting, and re-raises it on its own thread.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// Where the caller sleeps once it has spun long enough, woken by the thread that finishes
    /// the last chunk.
    done_lock: Mutex<()>,
    done: Condvar,
    /// Set by the caller before it sleeps on `done`.
    caller_sleeps: AtomicBool,
}

impl Job {
    /// As thread `me`: claim and compute this thread's chunks, then any other thread's still
    /// unclaimed, until none is left.
    ///
    /// Never inlined: a pool worker's loop never returns, and a browser's wasm engine replaces a
    /// function's first, unoptimized (Liftoff) code only on the next call (V8 has no on-stack
    /// replacement for wasm); what is inlined into that loop could stay unoptimized on the
    /// workers for the page's life. As its own function the job's work is optimized like any
    /// other after a few calls.
    #[inline(never)]
    fn work(&self, me: usize, outputs: &Mutex<Outputs>) {
        let t = self.claimed.len();
        let per = self.chunks.div_ceil(t);
        let mut done = 0;
        let mut o = outputs.lock().unwrap_or_else(|e| e.into_inner());
        o.start(self.id);
        for owner in (me..t).chain(0..me) {
            loop {
                let k = self.claimed[owner].fetch_add(1, Ordering::AcqRel);
                let i = owner * per + k;
                if k >= per || i >= self.chunks {
                    break;
                }
                let (start, len) = (o.data.len(), self.chunk_len(i));
                o.data.resize(start + len, 0.0);
                o.chunks.push((i, start));
                let Outputs { data, scratch, .. } = &mut *o;
                let out = &mut data[start..];
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| self.chunk(i, out, scratch)))
                {
                    let mut slot = self.panic.lock().unwrap_or_else(|e| e.into_inner());
                    slot.get_or_insert(payload);
                }
                done += 1;
            }
        }
        drop(o);
        if done > 0
            && self.finished.fetch_add(done, Ordering::SeqCst) + done == self.chunks
            && self.caller_sleeps.load(Ordering::SeqCst)
        {
            // The last chunks, and the caller has stopped spinning: wake it (under the lock,
            // so a caller that has just seen the job unfinished is already waiting). The flag
            // is set before the caller's last look at `finished` (both SeqCst): one of the two
            // sees the other, so no wake-up is lost, and a spinning caller costs the finishing
            // thread nothing.
            let _g = self.done_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.done.notify_all();
        }
    }

    /// Wait until every chunk is finished: spin (the other threads' chunks are usually done
    /// within microseconds), then sleep until the last one wakes us. Sleeping, not yielding:
    /// a thread that holds a chunk may be descheduled (more runnable threads than cores: a
    /// browser's own threads beside the pool), and a caller that keeps spinning takes the core
    /// it needs (`yield_now` does nothing in wasm).
    fn wait(&self) {
        let all = self.chunks;
        let mut spin = Spin::new();
        while self.finished.load(Ordering::Acquire) < all {
            if spin.spinning() {
                std::hint::spin_loop();
                continue;
            }
            let g = self.done_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.caller_sleeps.store(true, Ordering::SeqCst);
            if self.finished.load(Ordering::SeqCst) < all {
                // A timeout as a backstop only: the last chunk's thread notifies.
                let _ = self.done.wait_timeout(g, DONE_BACKSTOP);
            }
        }
    }
}

/// The longest a waiting caller sleeps without a wake-up before it looks again.
const DONE_BACKSTOP: std::time::Duration = std::time::Duration::from_millis(5);

impl Job {
    /// A job of `chunks` chunks for `threads` threads.
    fn new(work: Work, chunks: usize, threads: usize) -> Job {
        Job {
            work,
            chunks,
            claimed: (0..threads.max(1))
                .map(|_| Padded(AtomicUsize::new(0)))
                .collect(),
            finished: Padded(AtomicUsize::new(0)),
            id: 0,
            panic: Mutex::new(None),
            done_lock: Mutex::new(()),
            done: Condvar::new(),
            caller_sleeps: AtomicBool::new(false),
        }
    }

    /// Values of chunk `i`'s output: a product's rows, (n_tok, rows of the chunk) row-major;
    /// an attention unit's, (tokens of the unit, its heads · head_dim).
    fn chunk_len(&self, i: usize) -> usize {
        match &self.work {
            Work::Prods(p) => {
                let (_, r0, r1) = p.ranges[i];
                p.n * (r1 - r0)
            }
            Work::Attention(a) => {
                let (tb, width) = a.unit_shape(i);
                tb * width
            }
        }
    }

    /// Compute chunk `i` into `out` (zeroed, [`Job::chunk_len`] values).
    fn chunk(&self, i: usize, out: &mut [f32], scratch: &mut Vec<f32>) {
        match &self.work {
            Work::Prods(p) => p.chunk(i, out, scratch),
            Work::Attention(a) => a.chunk(i, out, scratch),
        }
    }

    /// Every chunk's output as `(chunk, values)`, from the threads' [`Outputs`] (once the job is
    /// finished).
    fn each_output(&self, outputs: &[Padded<Mutex<Outputs>>], mut f: impl FnMut(usize, &[f32])) {
        for o in outputs {
            let o = o.lock().unwrap_or_else(|e| e.into_inner());
            if o.job != self.id {
                continue;
            }
            for &(i, start) in &o.chunks {
                f(i, &o.data[start..start + self.chunk_len(i)]);
            }
        }
    }
}

enum Work {
    Prods(Prods),
    Attention(Attention),
}

/// One or more matrix products of the same input (q, k, v; gate, up), cut into row chunks. One
/// job instead of one per product: each job costs a hand-off and a wait for its slowest chunk,
/// which small decode products feel.
struct Prods {
    parts: Vec<Part>,
    /// The input, (n, cols): f32, or quantized once per format where an 8-bit kernel runs.
    inputs: Vec<Input>,
    n: usize,
    /// Chunk `i` is rows `ranges[i].1 .. ranges[i].2` of part `ranges[i].0`.
    ranges: Vec<(usize, usize, usize)>,
}

/// A layer's attention, cut into its units ([`attention_units`]: a KV head × a block of query
/// tokens). The KV cache's rows are read under their lock, held for one unit.
struct Attention {
    shape: AttnShape,
    /// (n, n_head · head_dim)
    q: Vec<f32>,
    k: KvRows,
    v: KvRows,
    units: Vec<(usize, usize)>,
}

impl Attention {
    /// Tokens of unit `i`, and its output's row width (its heads · head_dim).
    fn unit_shape(&self, i: usize) -> (usize, usize) {
        let a = &self.shape;
        let tb = QUERY_BLOCK.min(a.n - self.units[i].1);
        (tb, a.unit_width())
    }

    fn chunk(&self, i: usize, out: &mut [f32], scratch: &mut Vec<f32>) {
        let (_, width) = self.unit_shape(i);
        let (k, v) = (kv_cache::read(&self.k), kv_cache::read(&self.v));
        attention_unit(
            &self.shape,
            &self.q,
            &k,
            &v,
            self.units[i],
            scratch,
            out,
            width,
        );
    }
}

impl Prods {
    /// Compute chunk `i` (a gated pair: both products' rows, then the activation step).
    fn chunk(&self, i: usize, out: &mut [f32], scratch: &mut Vec<f32>) {
        let (pi, r0, r1) = self.ranges[i];
        let p = &self.parts[pi];
        self.rows(&p.w, r0..r1, out);
        if let Some((up, ga)) = &p.gated {
            scratch.clear();
            scratch.resize(out.len(), 0.0);
            self.rows(up, r0..r1, scratch);
            ga.apply(r0..r1, out, scratch);
        }
    }

    /// `out (n, rows.len())` = rows `rows` of `m` times its input.
    fn rows(&self, m: &Mat, rows: std::ops::Range<usize>, out: &mut [f32]) {
        let w = &m.w[rows.start * m.row_bytes..rows.end * m.row_bytes];
        match &self.inputs[m.input] {
            Input::F32(x) => quant::matmul(m.ty, w, m.cols, x, self.n, out),
            Input::Q8(q) => quant::matmul_q8(m.ty, w, m.cols, q, self.n, out),
        }
    }
}

/// A weight matrix of a job, read with input `input` of the job.
struct Mat {
    ty: GgmlType,
    w: Bytes,
    row_bytes: usize,
    cols: usize,
    input: usize,
}

/// One product of a job: `rows` rows of `w` (and where gated, the same rows of the up matrix and
/// the activation step, into the same output).
struct Part {
    w: Mat,
    rows: usize,
    gated: Option<(Mat, GateAct)>,
}

enum Input {
    F32(Vec<f32>),
    Q8(quant::Q8Acts),
}

/// The input format a product of `ty` reads: f32, or 8-bit with this many values per scale.
fn input_format(act: Activations, ty: GgmlType, cols: usize) -> Option<usize> {
    quant::uses_q8(act, ty, cols).then(|| quant::q8_block(ty))
}

/// A thread's chunk outputs of its latest job, kept from job to job: once its buffers have grown
/// to a job's size, a chunk allocates nothing, and no chunk writes memory that another thread
/// has just written (an allocator's lock and free lists, a per-chunk buffer made by the
/// caller), so each chunk moves no cache line between the cores but its results'. The caller
/// reads them once the job is finished.
#[derive(Default)]
struct Outputs {
    /// The job (pool generation) they belong to: a thread that saw no chunk of a job keeps an
    /// older one's.
    job: u64,
    /// The chunks' values, one after another.
    data: Vec<f32>,
    /// Per chunk computed: (chunk index, its first value in `data`).
    chunks: Vec<(usize, usize)>,
    /// A chunk's working memory (a gated product's up rows, attention's scores).
    scratch: Vec<f32>,
}

/// Values an [`Outputs`] buffer keeps between jobs at most (4 MiB): a decode step's largest
/// output is the lm head's share; a long prefill's larger buffers are given back.
const OUTPUTS_KEEP: usize = 1 << 20;

impl Outputs {
    /// Empty, for job `id`.
    fn start(&mut self, id: u64) {
        self.job = id;
        self.chunks.clear();
        self.data.clear();
        if self.data.capacity() > OUTPUTS_KEEP {
            self.data = Vec::new();
        }
        if self.scratch.capacity() > OUTPUTS_KEEP {
            self.scratch = Vec::new();
        }
    }
}

struct State {
    job: Option<Arc<Job>>,
    quit: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Bumped for every job, after the job is in `state` and the lock is released: a spinning
    /// worker that sees it takes the lock uncontended. (Bumped under the lock, a worker that saw
    /// it before the caller's unlock found the lock held; std's mutex polls a hundred times
    /// before it sleeps, and in wasm, where `spin_loop` is no instruction, that is over within
    /// a fraction of a µs: the worker then slept until the caller's unlock woke it.)
    generation: AtomicU64,
    /// Workers about to park on `wake`: a job is announced with a notification only when one
    /// is, spinning workers see the new generation by themselves. Paired with `generation`
    /// (both SeqCst): a worker counts itself, then looks at the generation once more; the
    /// caller bumps the generation, then looks at this count; one of the two sees the other.
    sleepers: AtomicUsize,
    /// Per thread (the caller is 0): its chunks' outputs.
    outputs: Vec<Padded<Mutex<Outputs>>>,
}

pub struct Pool {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    threads: usize,
}

/// Rows per chunk at least (a chunk is one `quant::matmul` call).
const MIN_CHUNK_ROWS: usize = 32;
/// Chunks per thread (load balancing when a thread is slow or descheduled).
const CHUNKS_PER_THREAD: usize = 4;
/// Weight bytes per chunk at most where its input is small next to them (decode): a large
/// product (the lm head: a third of a small model's bytes) in `threads · CHUNKS_PER_THREAD`
/// chunks leaves a thread that was held up, or started late, a big last chunk to finish alone.
const CHUNK_BYTES: usize = 256 << 10;

/// Chunks for a product of `rows` rows of `row_bytes` (× `mats`: a gated pair reads two
/// matrices per row) over an input of `n` rows of `cols` values, for `threads` threads.
fn chunks_for(
    threads: usize,
    rows: usize,
    row_bytes: usize,
    mats: usize,
    n: usize,
    cols: usize,
) -> usize {
    let spread = (threads * CHUNKS_PER_THREAD).min(rows / MIN_CHUNK_ROWS);
    // Bounded by size only where a chunk still reads several times more weight bytes than
    // input (each chunk reads the whole input): decode, not a prefill batch.
    let bytes = row_bytes * mats;
    let min_rows = MIN_CHUNK_ROWS.max((4 * n * cols * 4).div_ceil(bytes.max(1)));
    let by_size = (rows * bytes / CHUNK_BYTES).min(rows / min_rows);
    spread.max(by_size).max(1)
}

impl Pool {
    /// A pool for `threads` threads in all: the caller plus `threads - 1` workers.
    pub fn new(threads: usize) -> Pool {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                job: None,
                quit: false,
            }),
            wake: Condvar::new(),
            generation: AtomicU64::new(0),
            sleepers: AtomicUsize::new(0),
            outputs: (0..threads)
                .map(|_| Padded(Mutex::new(Outputs::default())))
                .collect(),
        });
        let mut handles = Vec::new();
        let mut started = 1;
        for i in 1..threads {
            let sh = Arc::clone(&shared);
            // Its index among the threads that started (a job has a counter per thread).
            let me = started;
            match SPAWNER.get() {
                Some(spawn) => {
                    // Not joined on drop: a hook-started worker exits by itself once `quit` is
                    // set, keeping `shared` alive until then.
                    if spawn(Box::new(move || worker(&sh, me))) {
                        started += 1;
                    }
                }
                None => {
                    handles.push(
                        std::thread::Builder::new()
                            .name(format!("chord-worker-{i}"))
                            .spawn(move || worker(&sh, me))
                            .expect("spawn a worker thread"),
                    );
                    started += 1;
                }
            }
        }
        Pool {
            shared,
            handles,
            threads: started,
        }
    }

    /// This thread's pool of `threads` threads, made once and shared by every caller on this
    /// thread (a new count replaces it). The browser's engine worker uses it: each of its
    /// sessions would otherwise start its own set of Web Workers. Jobs from one thread never
    /// overlap, so sharing is safe; a pool is never shared across threads (`Rc`).
    pub fn shared(threads: usize) -> std::rc::Rc<Pool> {
        thread_local! {
            static SHARED: std::cell::RefCell<Option<(usize, std::rc::Rc<Pool>)>> =
                const { std::cell::RefCell::new(None) };
        }
        let threads = threads.max(1);
        SHARED.with(|s| {
            let mut s = s.borrow_mut();
            match &*s {
                Some((n, pool)) if *n == threads => pool.clone(),
                _ => {
                    let pool = std::rc::Rc::new(Pool::new(threads));
                    *s = Some((threads, pool.clone()));
                    pool
                }
            }
        })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// `out (n, w.rows) = x (n, w.cols) · wᵀ` with the rows split across the pool.
    pub fn matmul(&self, act: Activations, w: &QTensor, x: &[f32], n: usize, out: &mut [f32]) {
        self.run(act, &mut [Prod::plain(w, out)], x, n);
    }

    /// Products of one input in one job (q, k, v; a gated gate·up), each plain or gated
    /// ([`Prod`]): `out_i (n, w_i.rows) = x (n, cols) · w_iᵀ`.
    pub(crate) fn run(&self, act: Activations, prods: &mut [Prod], x: &[f32], n: usize) {
        let per_part = |p: &Prod| {
            let mats = if p.gated.is_some() { 2 } else { 1 };
            chunks_for(self.threads, p.w.rows, p.w.row_bytes(), mats, n, p.w.cols)
        };
        let chunks: usize = prods.iter().map(per_part).sum();
        if self.threads == 1 || chunks < 2 {
            for p in prods.iter_mut() {
                p.run_here(act, x, n);
            }
            return;
        }
        let mut parts = Vec::new();
        let mut inputs = Vec::new();
        let mut formats: Vec<Option<usize>> = Vec::new();
        let mut ranges = Vec::new();
        // A matrix of the job, reading the input in its format (quantized once per format).
        let mut mat = |w: &QTensor| {
            let f = input_format(act, w.ty, w.cols);
            let input = match formats.iter().position(|&g| g == f) {
                Some(i) => i,
                None => {
                    inputs.push(match f {
                        Some(_) => {
                            let mut q = quant::Q8Acts::default();
                            q.quantize_for(w.ty, x);
                            Input::Q8(q)
                        }
                        None => Input::F32(x.to_vec()),
                    });
                    formats.push(f);
                    inputs.len() - 1
                }
            };
            Mat {
                ty: w.ty,
                w: w.data.clone(),
                row_bytes: w.row_bytes(),
                cols: w.cols,
                input,
            }
        };
        for (pi, p) in prods.iter().enumerate() {
            let rows = p.w.rows;
            let per = rows.div_ceil(per_part(p));
            ranges
                .extend((0..rows.div_ceil(per)).map(|i| (pi, i * per, ((i + 1) * per).min(rows))));
            parts.push(Part {
                w: mat(p.w),
                rows,
                gated: p.gated.as_ref().map(|(up, ga, _)| (mat(up), (*ga).clone())),
            });
        }
        let chunks = ranges.len();
        let work = Work::Prods(Prods {
            parts,
            inputs,
            n,
            ranges,
        });
        let job = self.launch(Job::new(work, chunks, self.threads));
        let Work::Prods(w) = &job.work else {
            unreachable!("a products job")
        };
        job.each_output(&self.shared.outputs, |i, rows| {
            let (pi, r0, r1) = w.ranges[i];
            let (c, wr) = (r1 - r0, w.parts[pi].rows);
            let out = &mut prods[pi].out;
            for t in 0..n {
                out[t * wr + r0..t * wr + r1].copy_from_slice(&rows[t * c..(t + 1) * c]);
            }
        });
    }

    /// A layer's attention ([`attention`]) with its units split across the pool: `q`, `out`
    /// (n, n_head · head_dim); `k`, `v` the layer's cache rows. The same bits as on one thread
    /// (a unit is computed whole, by one thread, with the same code).
    pub(crate) fn attention(
        &self,
        a: &AttnShape,
        q: &[f32],
        (k, v): (KvRows, KvRows),
        scratch: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        let units: Vec<(usize, usize)> = attention_units(a).collect();
        if self.threads == 1 || units.len() < 2 {
            return attention(a, q, &kv_cache::read(&k), &kv_cache::read(&v), scratch, out);
        }
        let chunks = units.len();
        let work = Work::Attention(Attention {
            shape: *a,
            q: q.to_vec(),
            k,
            v,
            units,
        });
        let job = self.launch(Job::new(work, chunks, self.threads));
        let Work::Attention(w) = &job.work else {
            unreachable!("an attention job")
        };
        let qd = a.n_head * a.head_dim;
        job.each_output(&self.shared.outputs, |i, got| {
            let (kvh, t0) = w.units[i];
            let (tb, width) = w.unit_shape(i);
            for t in 0..tb {
                let o = (t0 + t) * qd + kvh * width;
                out[o..o + width].copy_from_slice(&got[t * width..(t + 1) * width]);
            }
        });
    }

    /// Hand `job` to the workers, work on it too, and wait until every chunk is done; a chunk's
    /// panic is raised here.
    fn launch(&self, mut job: Job) -> Arc<Job> {
        let sh = &*self.shared;
        // Only this thread bumps the generation: the job's is the next one.
        job.id = sh.generation.load(Ordering::Relaxed) + 1;
        let job = Arc::new(job);
        sh.state.lock().expect("pool lock").job = Some(Arc::clone(&job));
        sh.generation.fetch_add(1, Ordering::SeqCst);
        // A worker that counted itself before this bump is woken (under the lock, so one that
        // has counted itself but not yet gone to sleep is asleep, the lock released, before the
        // notification); one that counts itself after it sees the new generation itself.
        if sh.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = sh.state.lock().expect("pool lock");
            sh.wake.notify_all();
        }
        job.work(0, &sh.outputs[0]);
        // Wait for the chunks other threads claimed.
        job.wait();
        sh.state.lock().unwrap_or_else(|e| e.into_inner()).job = None;
        // A chunk panicked (a bug or a malformed tensor): the panic surfaces here, on the
        // caller's thread, instead of killing a worker and leaving this thread spinning.
        if let Some(payload) = job.panic.lock().unwrap_or_else(|e| e.into_inner()).take() {
            resume_unwind(payload);
        }
        job
    }
}

/// Pool worker `me` (1 ..): the caller is thread 0 of every job.
fn worker(sh: &Shared, me: usize) {
    let mut seen = 0u64;
    loop {
        // Spin for a new generation, then park on the condition variable.
        let mut spin = Spin::new();
        while sh.generation.load(Ordering::Acquire) == seen && spin.spinning() {
            std::hint::spin_loop();
        }
        let job = {
            let mut st = sh.state.lock().expect("pool lock");
            loop {
                if st.quit {
                    return;
                }
                let g = sh.generation.load(Ordering::SeqCst);
                if g != seen {
                    seen = g;
                    break st.job.clone();
                }
                sh.sleepers.fetch_add(1, Ordering::SeqCst);
                if sh.generation.load(Ordering::SeqCst) == seen {
                    st = sh.wake.wait(st).expect("pool lock");
                }
                sh.sleepers.fetch_sub(1, Ordering::SeqCst);
            }
        };
        if let Some(job) = job {
            job.work(me, &sh.outputs[me]);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.state.lock().expect("pool lock").quit = true;
        self.shared.wake.notify_all();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An F32 matrix of `rows` × 32 with `bytes` of data (short data makes a chunk panic).
    fn matrix(rows: usize, bytes: usize) -> QTensor {
        QTensor {
            name: "w".into(),
            ty: GgmlType::F32,
            rows,
            cols: 32,
            data: Bytes::from_vec(vec![0u8; bytes]),
        }
    }

    #[test]
    fn a_panicking_chunk_reaches_the_caller_and_the_pool_survives() {
        let pool = Pool::new(3);
        let x = vec![1.0f32; 32];
        // Rows past the first 64 have no bytes: the chunks that own them panic (on workers).
        let bad = matrix(512, 64 * 32 * 4);
        let mut out = vec![0f32; 512];
        let t = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.matmul(Activations::F32, &bad, &x, 1, &mut out)
        }));
        assert!(r.is_err(), "the panic must propagate");
        assert!(t.elapsed().as_secs() < 5, "must not hang");
        // The workers are still there for the next job.
        let good = matrix(512, 512 * 32 * 4);
        pool.matmul(Activations::F32, &good, &x, 1, &mut out);
        assert!(out.iter().all(|&v| v == 0.0));
    }

    /// A job for three threads of which two never come (workers not started yet, or held up):
    /// the caller claims its own chunks, then theirs, and the job finishes with every chunk's
    /// rows what one product computes.
    #[test]
    fn chunks_of_threads_that_never_come_are_taken_by_the_others() {
        let (rows, cols) = (8 * 32, 32);
        let data: Vec<f32> = (0..rows * cols).map(|i| (i % 13) as f32 - 6.0).collect();
        let w = QTensor {
            data: Bytes::from_vec(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..matrix(rows, 0)
        };
        let x: Vec<f32> = (0..cols).map(|i| i as f32 / 8.0).collect();
        let mut want = vec![0f32; rows];
        Pool::new(1).matmul(Activations::F32, &w, &x, 1, &mut want);
        let part = Part {
            w: Mat {
                ty: w.ty,
                w: w.data.clone(),
                row_bytes: w.row_bytes(),
                cols,
                input: 0,
            },
            rows,
            gated: None,
        };
        let work = Work::Prods(Prods {
            parts: vec![part],
            inputs: vec![Input::F32(x)],
            n: 1,
            ranges: (0..8).map(|i| (0, 32 * i, 32 * i + 32)).collect(),
        });
        let job = Job::new(work, 8, 3);
        let outputs: Vec<_> = (0..3)
            .map(|_| Padded(Mutex::new(Outputs::default())))
            .collect();
        // A thread that saw no chunk of this job still holds an older job's outputs.
        {
            let mut stale = outputs[2].lock().unwrap();
            stale.start(job.id + 7);
            stale.data.resize(32, f32::NAN);
            stale.chunks.push((0, 0));
        }
        job.work(0, &outputs[0]);
        assert_eq!(job.finished.load(Ordering::SeqCst), 8, "every chunk done");
        job.wait();
        let mut seen = [false; 8];
        job.each_output(&outputs, |i, got| {
            assert_eq!(got[..], want[32 * i..32 * i + 32], "chunk {i}");
            seen[i] = true;
        });
        assert!(seen.iter().all(|&s| s), "every chunk's output is there");
    }

    /// A layer's attention split across threads (decode and prefill shapes, grouped heads, a
    /// sliding window, a soft cap) gives exactly what one thread gives.
    #[test]
    fn attention_split_like_one_thread() {
        let (n_head, n_head_kv, hd, n_ctx) = (12, 3, 16, 90);
        let (qd, kvd) = (n_head * hd, n_head_kv * hd);
        let val = |i: usize, k: usize| ((i * k) % 101) as f32 / 50.0 - 1.0;
        let rows = |k: usize| -> KvRows {
            Arc::new(std::sync::RwLock::new(
                (0..n_ctx * kvd).map(|i| val(i, k)).collect(),
            ))
        };
        let (kc, vc) = (rows(7919), rows(104_729));
        for (start, n, window, softcap) in
            [(40, 1, 0, None), (0, 37, 0, None), (20, 50, 9, Some(5.0))]
        {
            let a = AttnShape {
                n_head,
                n_head_kv,
                head_dim: hd,
                window,
                softcap,
                scale: 0.25,
                start,
                n,
            };
            let q: Vec<f32> = (0..n * qd).map(|i| val(i, 31)).collect();
            let run = |threads: usize| {
                let mut out = vec![f32::NAN; n * qd];
                let kv = (Arc::clone(&kc), Arc::clone(&vc));
                Pool::new(threads).attention(&a, &q, kv, &mut Vec::new(), &mut out);
                out
            };
            let one = run(1);
            assert!(one.iter().all(|x| x.is_finite()), "every output written");
            for threads in [2, 3] {
                assert_eq!(
                    one,
                    run(threads),
                    "{threads} threads, {n} tokens at {start}"
                );
            }
        }
    }

    /// A gated pair (gate, up, biases, the activation step) split across threads gives what one
    /// thread gives, and that is `act(x·gateᵀ + b_gate) · (x·upᵀ + b_up)` from two plain products.
    #[test]
    fn gated_products_split_like_one_thread() {
        let f32s = |n: usize, k: usize| -> Bytes {
            Bytes::from_vec(
                (0..n)
                    .flat_map(|i| (((i * k) % 97) as f32 / 48.0 - 1.0).to_le_bytes())
                    .collect(),
            )
        };
        let rows = 200;
        let gate = QTensor {
            data: f32s(rows * 32, 7),
            ..matrix(rows, 0)
        };
        let up = QTensor {
            data: f32s(rows * 32, 13),
            ..matrix(rows, 0)
        };
        let ga = GateAct {
            act: crate::backend::cpu::silu,
            b_gate: Some((0..rows).map(|i| i as f32 / 100.0 - 1.0).collect()),
            b_up: Some((0..rows).map(|i| 0.5 - i as f32 / 300.0).collect()),
        };
        let n = 3;
        let x: Vec<f32> = (0..n * 32).map(|i| (i % 11) as f32 / 5.0 - 1.0).collect();
        let gated = |threads: usize| {
            let (mut out, mut up_out) = (vec![0f32; n * rows], vec![0f32; n * rows]);
            let p = Prod {
                w: &gate,
                out: &mut out,
                gated: Some((&up, &ga, &mut up_out)),
            };
            Pool::new(threads).run(Activations::F32, &mut [p], &x, n);
            out
        };
        let one = gated(1);
        assert_eq!(one, gated(3));
        let (mut g, mut u) = (vec![0f32; n * rows], vec![0f32; n * rows]);
        let pool = Pool::new(1);
        pool.matmul(Activations::F32, &gate, &x, n, &mut g);
        pool.matmul(Activations::F32, &up, &x, n, &mut u);
        for (i, (g, u)) in g.iter().zip(&u).enumerate() {
            let r = i % rows;
            let want = crate::backend::cpu::silu(g + ga.b_gate.as_ref().unwrap()[r])
                * (u + ga.b_up.as_ref().unwrap()[r]);
            assert_eq!(one[i], want, "element {i}");
        }
    }

    /// Decode cuts a large product by its bytes (the lm head of a small model: its 30 MB in 117
    /// chunks, not 8), a prefill batch and small products much as before (threads × 4, at least
    /// 32 rows a chunk); a size-cut product computes what one thread does.
    #[test]
    fn large_decode_products_are_cut_by_size() {
        // SmolLM2's lm head (Q8_0, 49152 × 576: 612 bytes a row) and its q product (Q4_1).
        assert_eq!(
            chunks_for(2, 49152, 612, 1, 1, 576),
            49152 * 612 / CHUNK_BYTES
        );
        assert_eq!(chunks_for(2, 576, 360, 1, 1, 576), 8);
        // A prefill batch reads its whole input per chunk: a layer's gated FFN pair is not cut
        // by size, and a 256-token lm head only into chunks of 4× its input's bytes.
        assert_eq!(chunks_for(2, 1536, 360, 2, 64, 576), 8);
        assert_eq!(chunks_for(2, 49152, 612, 1, 256, 576), 49152 / 3856);
        // Few rows: one chunk per 32 rows at most, and at least one chunk.
        assert_eq!(chunks_for(16, 100, 612, 1, 1, 576), 3);
        assert_eq!(chunks_for(2, 8, 612, 1, 1, 576), 1);

        let (rows, cols) = (16384, 128);
        let w = QTensor {
            cols,
            data: Bytes::from_vec(
                (0..rows * cols)
                    .flat_map(|i| (((i * 7) % 97) as f32 / 48.0 - 1.0).to_le_bytes())
                    .collect(),
            ),
            ..matrix(rows, 0)
        };
        assert!(chunks_for(3, rows, w.row_bytes(), 1, 1, cols) > 3 * CHUNKS_PER_THREAD);
        let x: Vec<f32> = (0..cols).map(|i| (i % 13) as f32 / 6.0 - 1.0).collect();
        let (mut one, mut three) = (vec![0f32; rows], vec![f32::NAN; rows]);
        Pool::new(1).matmul(Activations::F32, &w, &x, 1, &mut one);
        Pool::new(3).matmul(Activations::F32, &w, &x, 1, &mut three);
        assert_eq!(one, three);
    }

    /// A pool whose workers come from a spawn hook (as in the browser) computes what one thread
    /// does, and `shared` hands the same pool to every caller on a thread.
    #[test]
    fn workers_from_a_spawn_hook() {
        set_spawner(|f| std::thread::Builder::new().spawn(f).is_ok());
        let pool = Pool::shared(3);
        assert_eq!(pool.threads(), 3);
        assert!(std::rc::Rc::ptr_eq(&pool, &Pool::shared(3)));
        let w = QTensor {
            data: Bytes::from_vec(
                (0..512 * 32)
                    .flat_map(|i| (i as f32).to_le_bytes())
                    .collect(),
            ),
            ..matrix(512, 0)
        };
        let x: Vec<f32> = (0..64).map(|i| i as f32 * 0.25).collect();
        let (mut one, mut three) = (vec![0f32; 1024], vec![0f32; 1024]);
        Pool::new(1).matmul(Activations::F32, &w, &x, 2, &mut one);
        pool.matmul(Activations::F32, &w, &x, 2, &mut three);
        assert_eq!(one, three);
    }
}
