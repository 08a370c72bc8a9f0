// jemalloc reads this symbol at start-up. Retain freed pages instead of returning
// them to the kernel: a first touch costs 16-21 us per 4 KiB page on the VMs this was
// measured on (trecvit bench alloc), so a training step that re-faults its temporaries
// runs many times slower. MALLOC_CONF in the environment still overrides it.
extern "C" {
__attribute__((used)) const char* malloc_conf =
    "retain:true,dirty_decay_ms:-1,muzzy_decay_ms:-1,background_thread:false";
}
