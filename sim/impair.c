/* Seeded packet impairment (pw_simimpair.h). */
#include "pw_simimpair.h"

#include <string.h>

void pw_sim_impair_init(pw_sim_impair *im, double loss, double dup, double reorder, uint64_t seed)
{
    memset(im, 0, sizeof(*im));
    im->loss = loss;
    im->dup = dup;
    im->reorder = reorder;
    pw_sim_rng_seed(&im->rng, seed);
}

/* Draws only when the probability is set, so a link without impairment consumes no numbers. */
static int chance(pw_sim_impair *im, double p)
{
    return p > 0.0 && pw_sim_rng_unit(&im->rng) < p;
}

void pw_sim_impair_pass(pw_sim_impair *im, const uint8_t *buf, size_t len, pw_sim_deliver_fn fn,
                        void *ctx)
{
    if (chance(im, im->loss)) {
        im->dropped++;
        return;
    }
    if (!im->holding && len <= sizeof(im->held) && chance(im, im->reorder)) {
        memcpy(im->held, buf, len);
        im->held_len = len;
        im->holding = 1;
        return;
    }
    fn(ctx, buf, len);
    if (chance(im, im->dup)) {
        im->duplicated++;
        fn(ctx, buf, len);
    }
    if (im->holding) {
        im->holding = 0;
        im->reordered++;
        fn(ctx, im->held, im->held_len);
    }
}

void pw_sim_impair_flush(pw_sim_impair *im, pw_sim_deliver_fn fn, void *ctx)
{
    if (im->holding) {
        im->holding = 0;
        fn(ctx, im->held, im->held_len);
    }
}
