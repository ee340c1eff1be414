/*
 * rand.h - a small deterministic pseudo-random generator (splitmix64).
 *
 * For whatever must give the same numbers from the same seed on every
 * machine: simulated traffic (`pond demo`), load generators, fuzzing.
 * Not for secrets: tokens come from getrandom (token.h).
 */
#ifndef POND_RAND_H
#define POND_RAND_H

#include <stdint.h>

/* pond_rand_mix is splitmix64's step from x: every bit of x moves every
 * bit of the result, so it also spreads a counter or an id evenly. */
uint64_t pond_rand_mix(uint64_t x);

/* pond_rand_next advances *state and returns the next number. */
uint64_t pond_rand_next(uint64_t *state);

/* pond_rand_below returns a number in [0, n) (0 when n <= 1). */
int64_t pond_rand_below(uint64_t *state, int64_t n);

#endif
