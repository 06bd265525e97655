/* placeholder */ typedef int vg_correlate_placeholder_;
