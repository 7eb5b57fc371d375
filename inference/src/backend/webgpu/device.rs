//! The wgpu device: adapter selection, limits, error capture, buffer helpers and async readback.
//!
//! Every wgpu error is turned into [`Error::Gpu`]: shader compilation runs inside an error scope,
//! uncaptured errors and device loss are recorded by callbacks and reported by the next call.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::error::{Error, Result};

pub use crate::backend::GpuOptions;

/// A device and queue with the limits this engine respects.
pub struct GpuDevice {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    /// Largest storage binding (and buffer) we create, in bytes (a multiple of 4).
    pub(crate) max_binding: u64,
    /// Nanoseconds per timestamp tick, when timestamp queries were asked for and are available.
    pub(crate) timestamp_period: Option<f32>,
    /// Timestamps can also be written between dispatches (per-op profile).
    pub(crate) timestamps_inside: bool,
    /// The KV cache is f16 (asked for, and the adapter has `shader-f16`).
    pub(crate) f16_kv: bool,
    /// The adapter offers `shader-f16`.
    shader_f16: bool,
    errors: Arc<Mutex<Option<String>>>,
}

fn gpu_err(what: impl std::fmt::Display) -> Error {
    Error::Gpu(what.to_string())
}

impl GpuDevice {
    /// Open the default high-performance adapter (natively: Vulkan/Metal/DX12; `WGPU_BACKEND`,
    /// `WGPU_ADAPTER_NAME` and `VK_ICD_FILENAMES` select another) with the adapter's own limits and
    /// no optional feature but timestamp queries, when `opts.timestamps` asks for them.
    pub async fn new(opts: &GpuOptions) -> Result<GpuDevice> {
        #[cfg(target_arch = "wasm32")]
        {
            let gpu = js_sys::Reflect::get(&js_sys::global(), &"navigator".into())
                .and_then(|n| js_sys::Reflect::get(&n, &"gpu".into()));
            if !gpu.is_ok_and(|g| !g.is_undefined() && !g.is_null()) {
                return Err(Error::Gpu(
                    "this browser has no WebGPU (navigator.gpu is missing)".into(),
                ));
            }
        }
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| {
                Error::Gpu(format!(
                    "no WebGPU adapter available ({e}); install a Vulkan driver (e.g. mesa-vulkan-drivers) or use --backend cpu"
                ))
            })?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let timestamps =
            opts.timestamps && adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let inside = wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
        let timestamps_inside = timestamps && adapter.features().contains(inside);
        let shader_f16 = adapter.features().contains(wgpu::Features::SHADER_F16);
        let f16_kv = opts.f16_kv && shader_f16;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("wasm-chord"),
                required_features: match (timestamps, timestamps_inside) {
                    (true, true) => wgpu::Features::TIMESTAMP_QUERY | inside,
                    (true, false) => wgpu::Features::TIMESTAMP_QUERY,
                    _ => wgpu::Features::empty(),
                } | if f16_kv {
                    wgpu::Features::SHADER_F16
                } else {
                    wgpu::Features::empty()
                },
                required_limits: limits.clone(),
                // Small allocator blocks on a CPU adapter (lavapipe: "GPU" memory is host memory):
                // every weight matrix and upload staging buffer of more than 4 MiB then gets its
                // own allocation, freed with it, instead of sharing blocks in which the staging
                // buffers' freed space stays resident (+0.46 GB for an 8B model on lavapipe).
                memory_hints: if info.device_type == wgpu::DeviceType::Cpu {
                    wgpu::MemoryHints::Manual {
                        suballocated_device_memory_block_size: 8 << 20..8 << 20,
                    }
                } else {
                    wgpu::MemoryHints::default()
                },
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("cannot open the GPU device: {e}")))?;
        let errors: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut g) = sink.lock() {
                g.get_or_insert_with(|| one_line(&e.to_string()));
            }
        }));
        let sink = errors.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if let Ok(mut g) = sink.lock() {
                g.get_or_insert_with(|| {
                    format!("GPU device lost ({reason:?}): {}", one_line(&msg))
                });
            }
        });
        let mut max_binding = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        if let Some(m) = opts.max_binding_bytes {
            max_binding = max_binding.min(m);
        }
        let max_binding = max_binding & !3;
        if max_binding < 1024 {
            return Err(Error::Gpu(format!(
                "storage binding limit of {max_binding} bytes is too small"
            )));
        }
        let timestamp_period = timestamps.then(|| queue.get_timestamp_period());
        Ok(GpuDevice {
            device,
            queue,
            info,
            max_binding,
            timestamp_period,
            timestamps_inside,
            f16_kv,
            shader_f16,
            errors,
        })
    }

    /// "name (backend, device type[, driver])" of the adapter (browsers may hide the name).
    pub fn adapter_info(&self) -> String {
        let name = if self.info.name.is_empty() {
            "unnamed adapter"
        } else {
            self.info.name.as_str()
        };
        format!(
            "{name} ({:?}, {:?}{})",
            self.info.backend,
            self.info.device_type,
            if self.info.driver.is_empty() {
                String::new()
            } else {
                format!(", {} {}", self.info.driver, self.info.driver_info)
            }
        )
    }

    /// A software rasterizer (SwiftShader, lavapipe, WARP): WebGPU works but is usually slower
    /// than the CPU engine, so the browser app prefers the CPU there unless asked otherwise.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Whether the KV cache is f16 (see [`GpuOptions::f16_kv`]).
    pub fn has_f16_kv(&self) -> bool {
        self.f16_kv
    }

    /// Whether the adapter offers `shader-f16` (what [`GpuOptions::f16_kv`] needs).
    pub fn adapter_has_shader_f16(&self) -> bool {
        self.shader_f16
    }

    /// Whether forward passes are timed on the GPU (see [`GpuOptions::timestamps`]).
    pub fn has_timestamps(&self) -> bool {
        self.timestamp_period.is_some()
    }

    /// The storage binding limit in force (bytes).
    pub fn max_binding_bytes(&self) -> u64 {
        self.max_binding
    }

    /// Give the device up now, as a driver reset, a GPU process crash or the browser reclaiming
    /// the GPU would: every later use reports "GPU device lost" (tests use this to check that a
    /// lost device is an error, not a panic or a hang).
    pub fn destroy(&self) {
        self.device.destroy();
    }

    /// The first error recorded by the callbacks, if any (then the device is unusable).
    pub(crate) fn check(&self) -> Result<()> {
        match self.errors.lock() {
            Ok(g) => match &*g {
                Some(e) => Err(Error::Gpu(e.clone())),
                None => Ok(()),
            },
            Err(_) => Err(Error::Gpu("GPU error state poisoned".into())),
        }
    }

    /// Compile `src` and build a compute pipeline for `entry` inside a validation error scope.
    pub(crate) async fn pipeline(
        &self,
        label: &str,
        src: &str,
        entry: &str,
        layout: &wgpu::BindGroupLayout,
    ) -> Result<wgpu::ComputePipeline> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            });
        let pl = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(label),
                bind_group_layouts: &[Some(layout)],
                immediate_size: 0,
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: Some(&pl),
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(e) = scope.pop().await {
            return Err(Error::Gpu(format!(
                "shader `{label}` failed to compile: {}",
                one_line(&e.to_string())
            )));
        }
        self.check()?;
        Ok(pipeline)
    }

    /// Compile a standalone WGSL compute shader (no bindings) and report errors as [`Error::Gpu`].
    pub async fn compile(&self, label: &str, src: &str, entry: &str) -> Result<()> {
        let layout = self.layout(label, &[]);
        self.pipeline(label, src, entry, &layout).await.map(|_| ())
    }

    /// A bind group layout of compute-stage bindings 0.. of the given kinds.
    pub(crate) fn layout(&self, label: &str, kinds: &[Bind]) -> wgpu::BindGroupLayout {
        let entries: Vec<wgpu::BindGroupLayoutEntry> = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match k {
                        Bind::Uniform => wgpu::BufferBindingType::Uniform,
                        Bind::Read => wgpu::BufferBindingType::Storage { read_only: true },
                        Bind::Write => wgpu::BufferBindingType::Storage { read_only: false },
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        self.device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(label),
                entries: &entries,
            })
    }

    pub(crate) fn bind_group(
        &self,
        layout: &wgpu::BindGroupLayout,
        buffers: &[&wgpu::Buffer],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout,
            entries: &entries,
        })
    }

    /// An uninitialized storage buffer for `len` bytes (rounded up to a multiple of 4).
    pub(crate) fn storage(&self, label: &str, len: usize) -> Result<wgpu::Buffer> {
        let size = (len.max(4) as u64).div_ceil(4) * 4;
        if size > self.max_binding {
            return Err(Error::Gpu(format!(
                "buffer `{label}` of {size} bytes exceeds the {}-byte binding limit",
                self.max_binding
            )));
        }
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }))
    }

    /// A storage buffer holding `bytes` (padded with zeros to a multiple of 4).
    pub(crate) fn upload(&self, label: &str, bytes: &[u8]) -> Result<wgpu::Buffer> {
        let buf = self.storage(label, bytes.len())?;
        // `write_buffer`, not a buffer mapped at creation: in the browser a mapped range is a
        // second copy of the tensor in wasm memory plus a JS ArrayBuffer awaiting GC, while
        // `GPUQueue.writeBuffer` streams from our bytes in place. The empty submit hands the
        // staging memory back at once (natively it would pile up until the first real submit).
        let whole = bytes.len() / 4 * 4;
        if whole > 0 {
            self.queue.write_buffer(&buf, 0, &bytes[..whole]);
        }
        if whole < bytes.len() {
            let mut tail = [0u8; 4];
            tail[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
            self.queue.write_buffer(&buf, whole as u64, &tail);
        }
        self.queue.submit([]);
        Ok(buf)
    }

    pub(crate) fn upload_f32(&self, label: &str, v: &[f32]) -> Result<wgpu::Buffer> {
        self.upload(label, bytemuck::cast_slice(v))
    }

    /// A zeroed read-write storage buffer of `n` f32 values.
    pub(crate) fn scratch(
        &self,
        label: &str,
        n: usize,
        extra: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer> {
        let size = (n.max(1) as u64) * 4;
        if size > self.max_binding {
            return Err(Error::Gpu(format!(
                "buffer `{label}` of {size} bytes exceeds the {}-byte binding limit; use a smaller context",
                self.max_binding
            )));
        }
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC
                | extra,
            mapped_at_creation: false,
        }))
    }

    /// A uniform buffer holding `words`. Written through the queue rather than mapped at
    /// creation: mapping panics inside wgpu when the device is already lost, a queue write
    /// only records the error.
    pub(crate) fn uniform<T: bytemuck::Pod>(&self, label: &str, v: &T) -> wgpu::Buffer {
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: std::mem::size_of::<T>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.queue.write_buffer(&buf, 0, bytemuck::bytes_of(v));
        buf
    }

    pub(crate) fn readback_buffer(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4).div_ceil(4) * 4,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Wait for the queue and read `buf` (a MAP_READ buffer) back.
    pub(crate) async fn read(&self, buf: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        let slice = buf.slice(..bytes);
        let (tx, rx) = oneshot();
        slice.map_async(wgpu::MapMode::Read, move |r| tx.send(r));
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.device
                .poll(wgpu::PollType::Wait {
                    submission_index: None,
                    timeout: Some(std::time::Duration::from_secs(300)),
                })
                .map_err(|e| gpu_err(format!("waiting for the GPU failed: {e}")))?;
        }
        let r = rx.await;
        self.check()?;
        match r {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(gpu_err(format!("reading a GPU buffer failed: {e}"))),
            None => return Err(gpu_err("reading a GPU buffer was cancelled")),
        }
        let out = slice
            .get_mapped_range()
            .map_err(|e| gpu_err(format!("reading a GPU buffer failed: {e}")))?
            .to_vec();
        buf.unmap();
        Ok(out)
    }
}

/// Binding kinds of a bind group layout.
#[derive(Clone, Copy)]
pub(crate) enum Bind {
    Uniform,
    Read,
    Write,
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ----------------------------------------------------------------------------------------------
// A minimal oneshot channel (map_async callbacks → async readback), no extra dependency.
// ----------------------------------------------------------------------------------------------

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
    closed: bool,
}

pub(crate) struct Sender<T>(Arc<Mutex<Slot<T>>>);
pub(crate) struct Receiver<T>(Arc<Mutex<Slot<T>>>);

pub(crate) fn oneshot<T>() -> (Sender<T>, Receiver<T>) {
    let s = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
        closed: false,
    }));
    (Sender(s.clone()), Receiver(s))
}

impl<T> Sender<T> {
    pub(crate) fn send(self, v: T) {
        if let Ok(mut g) = self.0.lock() {
            g.value = Some(v);
            if let Some(w) = g.waker.take() {
                w.wake();
            }
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if let Ok(mut g) = self.0.lock() {
            g.closed = true;
            if let Some(w) = g.waker.take() {
                w.wake();
            }
        }
    }
}

impl<T> Future for Receiver<T> {
    /// `None` when the sender was dropped without sending.
    type Output = Option<T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let Ok(mut g) = self.0.lock() else {
            return Poll::Ready(None);
        };
        if let Some(v) = g.value.take() {
            return Poll::Ready(Some(v));
        }
        if g.closed {
            return Poll::Ready(None);
        }
        g.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}
