"""
The data side of nanoSAS: `python data/prepare.py` builds a dataset folder, data.dataset.Dataset reads it.

    from data.dataset import Dataset
    ds = Dataset("data/stdlib")
    x, y = ds.get_batch("train", batch_size=8, block_size=128, generator=torch.Generator().manual_seed(0))
    print(ds.decode(x[0].tolist()))
"""
