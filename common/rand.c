/*
 * rand.c - splitmix64 (Steele, Lea and Flood, "Fast splittable
 * pseudorandom number generators", 2014): a 64-bit counter run through a
 * mixing function. Small, fast, and the same on every platform.
 */
#include "rand.h"

uint64_t
pond_rand_mix(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return (x ^ (x >> 31));
}

uint64_t
pond_rand_next(uint64_t *state)
{
	uint64_t x = *state;

	*state += UINT64_C(0x9e3779b97f4a7c15);
	return (pond_rand_mix(x));
}

int64_t
pond_rand_below(uint64_t *state, int64_t n)
{
	/* The modulo bias is below 2^-40 for the small n used here. */
	return (n <= 1 ? 0 : (int64_t)(pond_rand_next(state) % (uint64_t)n));
}
