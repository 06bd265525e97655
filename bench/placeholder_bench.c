/* placeholder */ typedef int vg_bench_placeholder_;
