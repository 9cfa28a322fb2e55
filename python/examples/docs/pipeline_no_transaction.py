pipe = r.pipeline(transaction=False)
