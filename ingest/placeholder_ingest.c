/* placeholder */ typedef int vg_ingest_placeholder_;
