//! The heap of a plugin built for `wasm32-unknown-unknown`.
//!
//! std's allocator on that target asks for every region with
//! `memory.grow`, never using the memory the instance starts with. gridlet
//! gives each delivery a fresh instance, so that would be a `memory.grow`
//! per delivery — in wasmtime an `mprotect` and a TLB flush each time,
//! which cost more than leaving out WASI's imports saved
//! (docs/BENCHMARKS.md §1).
//! This allocator hands dlmalloc the start-up memory past `__heap_base`
//! first (link with `--initial-heap`, as `cargo xtask plugins` does), and
//! grows memory only when that is used up.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;

const PAGE: usize = 64 * 1024;

extern "C" {
    /// Where the linker ends static data: the heap may start here.
    static __heap_base: u8;
}

/// Regions of linear memory for dlmalloc: the start-up memory once (if
/// dlmalloc's first request fits in it), then new pages.
struct LinearMemory {
    start_up_given: UnsafeCell<bool>,
}

// One thread: wasm32-unknown-unknown without the threads feature.
unsafe impl Send for LinearMemory {}

unsafe impl dlmalloc::Allocator for LinearMemory {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        // SAFETY: single-threaded target; dlmalloc calls this under its lock.
        let given = unsafe { &mut *self.start_up_given.get() };
        if !*given {
            *given = true;
            let base = ptr::addr_of!(__heap_base) as usize;
            let end = core::arch::wasm32::memory_size(0) * PAGE;
            if end > base && end - base >= size {
                return (base as *mut u8, end - base, 0);
            }
        }
        let pages = size.div_ceil(PAGE);
        match core::arch::wasm32::memory_grow(0, pages) {
            usize::MAX => (ptr::null_mut(), 0, 0),
            previous => ((previous * PAGE) as *mut u8, pages * PAGE, 0),
        }
    }

    fn remap(&self, _: *mut u8, _: usize, _: usize, _: bool) -> *mut u8 {
        ptr::null_mut()
    }

    fn free_part(&self, _: *mut u8, _: usize, _: usize) -> bool {
        false
    }

    fn free(&self, _: *mut u8, _: usize) -> bool {
        false
    }

    fn can_release_part(&self, _: u32) -> bool {
        false
    }

    fn allocates_zeros(&self) -> bool {
        // Fresh start-up memory past the data, and grown pages, are zero.
        true
    }

    fn page_size(&self) -> usize {
        PAGE
    }
}

/// The global allocator of a plugin built for `wasm32-unknown-unknown`.
pub struct PluginHeap(UnsafeCell<dlmalloc::Dlmalloc<LinearMemory>>);

// One thread: see above.
unsafe impl Sync for PluginHeap {}

unsafe impl GlobalAlloc for PluginHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { (*self.0.get()).malloc(layout.size(), layout.align()) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { (*self.0.get()).calloc(layout.size(), layout.align()) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { (*self.0.get()).free(ptr, layout.size(), layout.align()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe { (*self.0.get()).realloc(ptr, layout.size(), layout.align(), new_size) }
    }
}

#[global_allocator]
static HEAP: PluginHeap = PluginHeap(UnsafeCell::new(dlmalloc::Dlmalloc::new_with_allocator(
    LinearMemory {
        start_up_given: UnsafeCell::new(false),
    },
)));
