from pages import _common as ui

ui.run_page("strategies", "strategies", lambda store: None)
