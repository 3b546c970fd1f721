/* proxy/stats.c */
#include "stats.h"

const char *const pt_stat_names[PT_STAT__COUNT] = {
#define PT_STAT_NAME(name, kind, help) #name,
    PT_STATS_LIST(PT_STAT_NAME)
#undef PT_STAT_NAME
};

const char *const pt_stat_kinds[PT_STAT__COUNT] = {
#define PT_STAT_KIND(name, kind, help) #kind,
    PT_STATS_LIST(PT_STAT_KIND)
#undef PT_STAT_KIND
};

const char *const pt_stat_helps[PT_STAT__COUNT] = {
#define PT_STAT_HELP(name, kind, help) help,
    PT_STATS_LIST(PT_STAT_HELP)
#undef PT_STAT_HELP
};
