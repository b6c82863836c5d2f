from pages import _common as ui

ui.run_page("compute_optimal", "compute_optimal", lambda store: None)
