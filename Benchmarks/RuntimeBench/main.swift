print("runtime bench: not yet")
