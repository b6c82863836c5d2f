from pages import _common as ui

ui.run_page("cost_of_pass", "cost_of_pass", lambda store: None)
