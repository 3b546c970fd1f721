/* proxy/stats.c */
#include "stats.h"

const char *const pt_stat_names[PT_STAT__COUNT] = {
#define PT_STAT_NAME(name) #name,
    PT_STATS_LIST(PT_STAT_NAME)
#undef PT_STAT_NAME
};
