print("no scenarios yet")
