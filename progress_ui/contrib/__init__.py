"""Optional integrations: task runners. The core never imports these."""
