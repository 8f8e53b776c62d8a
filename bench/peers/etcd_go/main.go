// A small etcd v3 load client for bench/peers_bench.py: put-if-absent transactions and
// linearizable gets at the given concurrencies, one cell of -seconds each (bounded by -max-ops
// too), against one endpoint on 127.0.0.1. Prints one JSON object a cell on stdout.
//
// Builds offline in GOPATH mode against Debian's golang-etcd-server-dev (clientv3, etcd 3.4):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o /tmp/etcd-go bench/peers/etcd_go/main.go
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
)

type row struct {
	Op          string  `json:"op"`
	Concurrency int     `json:"concurrency"`
	Ops         int     `json:"ops"`
	Seconds     float64 `json:"seconds"`
	OpsPerS     int     `json:"ops_per_s"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
}

func cell(op string, conc int, seconds float64, maxOps int64, f func(i int64) error) row {
	var mu sync.Mutex
	var lat []float64
	var n int64
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []float64
			for time.Now().Before(deadline) {
				i := atomic.AddInt64(&n, 1)
				if i > maxOps {
					break
				}
				t0 := time.Now()
				if err := f(i); err != nil {
					fmt.Fprintln(os.Stderr, op, err)
					os.Exit(1)
				}
				mine = append(mine, time.Since(t0).Seconds())
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	took := time.Since(start).Seconds()
	sort.Float64s(lat)
	r := row{Op: op, Concurrency: conc, Ops: len(lat), Seconds: took}
	if len(lat) > 0 {
		r.OpsPerS = int(float64(len(lat)) / took)
		r.P50Ms = lat[len(lat)/2] * 1e3
		i := int(float64(len(lat)) * 0.99)
		if i >= len(lat) {
			i = len(lat) - 1
		}
		r.P99Ms = lat[i] * 1e3
	}
	return r
}

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:2379", "etcd client endpoint (loopback)")
	seconds := flag.Float64("seconds", 3, "seconds per cell")
	concs := flag.String("conc", "1,16,64", "concurrencies")
	maxOps := flag.Int64("max-ops", 200000, "ops per cell at most")
	ops := flag.String("ops", "pia,get", "cells to run at each concurrency: pia (put-if-absent), get")
	prefix := flag.String("prefix", "gopia/", "key prefix of the put-if-absent cells (fresh keys)")
	flag.Parse()
	doPia, doGet := strings.Contains(*ops, "pia"), strings.Contains(*ops, "get")
	if !strings.HasPrefix(*endpoint, "127.0.0.1:") {
		fmt.Fprintln(os.Stderr, "loopback endpoints only")
		os.Exit(2)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{*endpoint},
		DialTimeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer cli.Close()
	value := "vvvvvvvv"
	ctx := context.Background()
	for i := 0; doGet && i < 1024; i++ {
		k := "goread/" + strconv.Itoa(i)
		if _, err := cli.Put(ctx, k, value); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	enc := json.NewEncoder(os.Stdout)
	var seq int64
	for _, cs := range strings.Split(*concs, ",") {
		conc, _ := strconv.Atoi(cs)
		if doPia {
			r := cell("put-if-absent", conc, *seconds, *maxOps, func(int64) error {
				k := *prefix + strconv.FormatInt(atomic.AddInt64(&seq, 1), 10)
				c, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				resp, err := cli.Txn(c).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
					Then(clientv3.OpPut(k, value)).Commit()
				if err == nil && !resp.Succeeded {
					err = fmt.Errorf("put-if-absent of a fresh key %s failed", k)
				}
				return err
			})
			enc.Encode(r)
		}
		if doGet {
			r := cell("get (linearizable)", conc, *seconds, *maxOps, func(i int64) error {
				c, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				resp, err := cli.Get(c, "goread/"+strconv.FormatInt(i%1024, 10))
				if err == nil && (len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != value) {
					err = fmt.Errorf("bad get")
				}
				return err
			})
			enc.Encode(r)
		}
	}
}
