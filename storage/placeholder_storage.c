/* placeholder */ typedef int vg_storage_placeholder_;
