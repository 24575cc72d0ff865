#!/usr/bin/env python3
"""Disk probe for the ingest log's syncs (issue 16 point 2): how long does making
8 appending files durable take, per round, when (seq8) one thread calls fdatasync
on the 8 one after the other, (sfr8) sync_file_range(WRITE) is called on all 8
first, (par8) 8 threads each write + fdatasync their file at once?
(one) all 8 files' bytes go to one file with one fdatasync.
Files are created in the current directory (seq8*, sfr8*, par8*, one*) and left there.
Usage: cd <dir on the disk under test> && python3 fsync_probe.py
"""
import os, time, threading, sys, ctypes
libc=ctypes.CDLL(None, use_errno=True)
libc.sync_file_range.argtypes=[ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
def sfr_w(fd):
    if libc.sync_file_range(fd,0,0,2)!=0: raise OSError(ctypes.get_errno(),'sfr')
N=8; ROUNDS=150; CHUNK=b'x'*12000
def files(prefix):
    return [os.open(f'{prefix}{i}', os.O_RDWR|os.O_CREAT|os.O_TRUNC|os.O_APPEND) for i in range(N)]
def pct(xs):
    xs=sorted(xs); return f"p50 {xs[len(xs)//2]*1e3:6.2f} p90 {xs[int(len(xs)*.9)]*1e3:6.2f} p99 {xs[int(len(xs)*.99)]*1e3:6.2f} max {xs[-1]*1e3:6.2f} ms"
def seq(fs):
    for fd in fs: os.write(fd,CHUNK)
    for fd in fs: os.fdatasync(fd)
def sfr(fs):
    for fd in fs: os.write(fd,CHUNK)
    for fd in fs: sfr_w(fd)
    for fd in fs: os.fdatasync(fd)
def par(fs):
    def w(fd): os.write(fd,CHUNK); os.fdatasync(fd)
    ts=[threading.Thread(target=w,args=(fd,)) for fd in fs]
    [x.start() for x in ts]; [x.join() for x in ts]
def one(fs):  # one file holding all 8 partitions' bytes: one fdatasync
    os.write(fs[0],CHUNK*N); os.fdatasync(fs[0])
res={}
for rep in range(3):
  for name,f in [('seq8',seq),('sfr8',sfr),('par8',par),('one',one)]:
    fs=files(name); lat=[]
    for r in range(ROUNDS):
        t=time.perf_counter(); f(fs); lat.append(time.perf_counter()-t)
    for fd in fs: os.close(fd)
    print(rep, name, pct(lat), flush=True)
