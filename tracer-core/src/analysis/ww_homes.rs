//! Where a ww_mutex lives, told from the kernel function that locked it: the
//! lock class lockdep would give it, on kernels without lockdep.
//!
//! Production kernels keep no class pointer in `struct ww_mutex` or
//! `struct ww_acquire_ctx` (`ww_class` exists only under
//! `CONFIG_DEBUG_MUTEXES`), so a lock's class must come from its home. A known
//! `struct dma_resv` (seen at `dma_resv_init` or in a dma-buf call) is a
//! reservation lock. Otherwise the frame that called `ww_mutex_lock*` names it
//! when that function only ever locks one kind of object: the functions below
//! lock nothing but the ww_mutex of a `struct dma_resv` (initialised with
//! `reservation_ww_class` by `dma_resv_init`) or of a `struct drm_modeset_lock`
//! (initialised with the file-static `crtc_ww_class` by
//! `drm_modeset_lock_init`). Anything else keeps a per-site class, the
//! cautious guess: it never joins two real classes into one.
//!
//! Kernel lines behind each entry, per lab kernel: docs/findings.md, "Lock
//! classes".

/// The class a home names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Home {
    /// `reservation_ww_class` (`dma_resv_init`).
    Reservation,
    /// A static ww class of the kernel, by its `DEFINE_WW_CLASS` name.
    Static(&'static str),
}

/// One row: calls of `ww_mutex_lock*` whose innermost non-locking frame is
/// `function` (exactly, or by prefix when `prefix`) lock objects of `home`.
#[derive(Clone, Copy, Debug)]
pub struct HomeRow {
    pub function: &'static str,
    pub prefix: bool,
    pub home: Home,
    /// Why (file and the lock call; line numbers per kernel in docs/findings.md).
    pub why: &'static str,
}

const fn exact(function: &'static str, home: Home, why: &'static str) -> HomeRow {
    HomeRow {
        function,
        prefix: false,
        home,
        why,
    }
}

const fn prefix(function: &'static str, home: Home, why: &'static str) -> HomeRow {
    HomeRow {
        function,
        prefix: true,
        home,
        why,
    }
}

const CRTC: Home = Home::Static("crtc_ww_class");

/// The table. Order does not matter: no row is a prefix of another row's
/// function with a different home (a test keeps it so).
pub const HOMES: &[HomeRow] = &[
    // drivers/gpu/drm/drm_modeset_lock.c: `static DEFINE_WW_CLASS(crtc_ww_class)`;
    // drm_modeset_lock_init() is the only ww_mutex_init of the file. modeset_lock()
    // is inlined into drm_modeset_lock() and drm_modeset_backoff() (its
    // ww_mutex_lock_slow*), so one class shows up under all three names.
    exact(
        "drm_modeset_lock",
        CRTC,
        "drm_modeset_lock.c: modeset_lock(): ww_mutex_lock*(&lock->mutex, &ctx->ww_ctx)",
    ),
    exact(
        "modeset_lock",
        CRTC,
        "drm_modeset_lock.c: modeset_lock(): ww_mutex_lock*(&lock->mutex, &ctx->ww_ctx)",
    ),
    exact(
        "drm_modeset_backoff",
        CRTC,
        "drm_modeset_lock.c: drm_modeset_backoff() -> modeset_lock(contended, ctx, interruptible, true): ww_mutex_lock_slow*",
    ),
    exact(
        "drm_modeset_lock_single_interruptible",
        CRTC,
        "drm_modeset_lock.c: ww_mutex_lock_interruptible(&lock->mutex, NULL)",
    ),
    exact(
        "drm_modeset_lock_all_ctx",
        CRTC,
        "drm_modeset_lock.c: drm_modeset_lock(&dev->mode_config.connection_mutex, ctx), ...",
    ),
    // drivers/dma-buf/dma-buf.c: every lock the core takes is dma_resv_lock(dmabuf->resv, NULL)
    // (dma_resv_lock is an inline wrapper of ww_mutex_lock on &obj->lock).
    prefix(
        "dma_buf_",
        Home::Reservation,
        "dma-buf.c: dma_resv_lock(dmabuf->resv, NULL) in the *_unlocked wrappers, attach, detach",
    ),
    // drivers/dma-buf/dma-resv.c and the inline dma_resv_lock* of dma-resv.h.
    prefix(
        "dma_resv_",
        Home::Reservation,
        "dma-resv.h: dma_resv_lock*(): ww_mutex_lock*(&obj->lock, ctx)",
    ),
    // drivers/gpu/drm/drm_gem.c: drm_gem_lock_reservations(), drm_gem_pin(), drm_gem_vmap_unlocked()
    // and friends lock obj->resv (a struct dma_resv).
    prefix(
        "drm_gem_",
        Home::Reservation,
        "drm_gem.c / drm_gem_shmem_helper.c / drm_gem_vram_helper.c: dma_resv_lock*(obj->resv, ...)",
    ),
    // drivers/gpu/drm/drm_exec.c: drm_exec_lock_obj() -> dma_resv_lock*(obj->resv, &exec->ticket).
    prefix(
        "drm_exec_",
        Home::Reservation,
        "drm_exec.c: dma_resv_lock*(obj->resv, &exec->ticket)",
    ),
    // drivers/gpu/drm/drm_client.c / drm_client_event.c: drm_client_buffer_vmap*() lock gem->resv.
    prefix(
        "drm_client_buffer_",
        Home::Reservation,
        "drm_client.c: dma_resv_lock(gem->resv, NULL)",
    ),
    // drivers/gpu/drm/ttm: every ww_mutex TTM locks is a buffer object's bo->base.resv.
    prefix(
        "ttm_",
        Home::Reservation,
        "ttm_bo.c / ttm_bo_util.c / ttm_execbuf_util.c: dma_resv_lock*/trylock(bo->base.resv, ...)",
    ),
];

/// The home named by the innermost non-locking frame `function`, if the table knows it.
pub fn home_of(function: &str) -> Option<Home> {
    HOMES
        .iter()
        .find(|r| {
            if r.prefix {
                function.starts_with(r.function)
            } else {
                function == r.function
            }
        })
        .map(|r| r.home)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modeset_names_are_one_class() {
        for f in ["drm_modeset_lock", "drm_modeset_backoff", "modeset_lock"] {
            assert_eq!(home_of(f), Some(CRTC), "{f}");
        }
        // A driver function that merely starts like a table entry is not it.
        assert_eq!(home_of("drm_modeset_lock_foo_driver"), None);
        assert_eq!(home_of("drm_gem_vmap"), Some(Home::Reservation));
        assert_eq!(home_of("i915_gem_object_lock"), None);
    }

    #[test]
    fn no_row_shadows_another_with_a_different_home() {
        for a in HOMES {
            for b in HOMES {
                if a.prefix && b.function.starts_with(a.function) {
                    assert_eq!(a.home, b.home, "{} shadows {}", a.function, b.function);
                }
            }
        }
    }
}
