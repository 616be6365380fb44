VALUE = "helper-ok"
