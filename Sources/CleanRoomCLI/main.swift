print("cleanroom")
