package devicebuf

import "sync"

// copyJob is one host memcpy.
type copyJob struct{ dst, src []byte }

// parallelMin is the size from which a copy is split across workers.
const parallelMin = 1 << 20

// parallelCopy runs the copies, splitting large ones across up to workers
// goroutines, which it waits for.
func parallelCopy(jobs []copyJob, workers int) {
	var total int
	for _, j := range jobs {
		total += len(j.src)
	}
	if workers <= 1 || total < 2*parallelMin {
		for _, j := range jobs {
			copy(j.dst, j.src)
		}
		return
	}
	// Cut the jobs into pieces of about total/workers bytes.
	piece := (total + workers - 1) / workers
	if piece < parallelMin {
		piece = parallelMin
	}
	var pieces []copyJob
	for _, j := range jobs {
		for len(j.src) > 0 {
			n := min(len(j.src), piece)
			pieces = append(pieces, copyJob{dst: j.dst[:n], src: j.src[:n]})
			j.dst, j.src = j.dst[n:], j.src[n:]
		}
	}
	var wg sync.WaitGroup
	next := make(chan copyJob, len(pieces))
	for _, p := range pieces {
		next <- p
	}
	close(next)
	for range min(workers, len(pieces)) {
		wg.Go(func() {
			for p := range next {
				copy(p.dst, p.src)
			}
		})
	}
	wg.Wait()
}
