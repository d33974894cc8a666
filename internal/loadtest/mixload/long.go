package mixload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
)

// longOp is one kind of work a long session does; weight is how often.
type longOp[S any] struct {
	name   string
	weight int
	run    func(s S, ctx context.Context) error
}

// pick chooses an operation at random, by weight.
func pick[S any](ops []longOp[S], rng *rand.Rand) longOp[S] {
	total := 0
	for _, op := range ops {
		total += op.weight
	}
	n := rng.IntN(total)
	for _, op := range ops {
		if n < op.weight {
			return op
		}
		n -= op.weight
	}
	return ops[0]
}

// runLong is long session i, held for the whole run and busy all the
// time with ops, each followed by an identity check; it trims its rows
// whenever it holds more than KeepRows. The first error or wrong answer
// ends it.
func runLong[S querier](r *run, a *actor, i int, ops []longOp[S], connect func(context.Context, string) (S, error)) {
	tag := fmt.Sprintf("%s_l%d", r.id, i)
	ctx, cancel := r.opCtx()
	s, err := connect(ctx, tag)
	cancel()
	if err != nil {
		if !errors.Is(err, errWrong) {
			r.fail(tag, "connect", err)
		}
		return
	}
	defer s.close()
	for n := 0; !r.stopping(); n++ {
		// Every kind of work once first (each session from another
		// start), then at random: a slow run still covers them all.
		op := pick(ops, s.core().rng)
		if n < len(ops) {
			op = ops[(n+i)%len(ops)]
		}
		if b, ok := r.ledger.oldest(tag, int64(r.opts.KeepRows)); ok {
			op = longOp[S]{name: "trim", run: func(s S, ctx context.Context) error { return trimBatch(s, ctx, b) }}
		}
		a.doing(op.name)
		ctx, cancel := r.opCtx()
		err := op.run(s, ctx)
		if err == nil {
			err = s.identity(ctx)
		}
		cancel()
		r.st.ops.Add(1)
		if err != nil {
			if !errors.Is(err, errWrong) {
				r.fail(tag, op.name, err)
			}
			return
		}
	}
}
