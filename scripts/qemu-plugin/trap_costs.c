/* QEMU TCG plugin for scripts/trap-costs: porwatch's EL2 instructions per
 * kind of trap.
 *
 * An episode starts when a translation block at one of porwatch's EL2 vector
 * slots executes (TRAP_COSTS_VECTORS: the runtime address of el2_vectors)
 * and lasts until the next one; it is charged to the highest-ranked marker
 * it reaches (TRAP_COSTS_MARKERS: "hexaddr name" lines, lowest rank first,
 * runtime addresses of handler entry points). Blocks outside
 * [TRAP_COSTS_LO, TRAP_COSTS_HI) (the guest) are not counted; instructions
 * executed before the first vector entry (porwatch's boot) are counted
 * apart. Writes "name episodes instructions" lines to TRAP_COSTS_OUT at exit.
 * One vCPU (-icount runs are single-threaded); counts are per block
 * executed, so a block left early by an exception counts whole (rare at EL2).
 * With TRAP_COSTS_BLOCKS set, also writes there "blockaddr insns kind
 * instructions" lines: what each EL2 block executed, per kind of trap (its
 * episode's marker index, or "other"), for a per-function breakdown.
 *
 * Only the plugin API's oldest calls are used, declared here, so that it
 * builds without QEMU's headers and loads into QEMU 8 to 11. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct {
    const char *target_name;
    struct { int min, cur; } version;
    bool system_emulation;
} qemu_info_t;
struct qemu_plugin_tb;
typedef void (*tb_trans_cb)(qemu_plugin_id_t, struct qemu_plugin_tb *);
typedef void (*vcpu_udata_cb)(unsigned int, void *);
typedef void (*udata_cb)(qemu_plugin_id_t, void *);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, tb_trans_cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *, vcpu_udata_cb, int, void *);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, udata_cb, void *);

__attribute__((visibility("default"))) int qemu_plugin_version = 2;

#define MAX_MARKERS 64
#define VECTOR_TABLE_BYTES 0x800
#define VECTOR_SLOT_MASK 0x7f
#define BOOT (-2)
#define NONE (-1)

static uint64_t lo, hi, vec_lo;
static uint64_t marker_addr[MAX_MARKERS];
static char marker_name[MAX_MARKERS][64];
static int markers;
/* Per marker, and [MAX_MARKERS] for episodes that reached none. */
static uint64_t episodes[MAX_MARKERS + 1], insns[MAX_MARKERS + 1];
static uint64_t boot_insns, acc;
static int cur = BOOT;

struct block {
    uint32_t n;
    int16_t marker;
    bool vector;
    uint64_t va;
    struct block *next;  /* every block, for the TRAP_COSTS_BLOCKS dump */
    uint64_t by_kind[MAX_MARKERS + 1];
};
static struct block *all_blocks;
/* The current episode's blocks (charged to its kind when it ends); beyond
 * EPISODE_MAX they are charged to "other". */
#define EPISODE_MAX 65536
static struct block *episode[EPISODE_MAX];
static size_t episode_len;
static uint64_t episode_overflow;
static bool per_block;

static void end_episode(void) {
    if (cur == BOOT) {
        boot_insns += acc;
    } else {
        int k = cur == NONE ? MAX_MARKERS : cur;
        episodes[k]++;
        insns[k] += acc;
        for (size_t i = 0; i < episode_len; i++) episode[i]->by_kind[k] += episode[i]->n;
    }
    episode_len = 0;
    acc = 0;
    cur = NONE;
}

static void exec_block(unsigned int vcpu, void *udata) {
    const struct block *b = udata;
    if (b->vector) end_episode();
    acc += b->n;
    if (per_block && cur != BOOT) {
        if (episode_len < EPISODE_MAX)
            episode[episode_len++] = (struct block *)b;
        else
            episode_overflow += b->n;
    }
    if (cur != BOOT && b->marker > cur) cur = b->marker;
}

static void translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    uint64_t va = qemu_plugin_tb_vaddr(tb);
    if (va < lo || va >= hi) return;
    struct block *b = calloc(1, sizeof *b);
    if (!b) return;
    b->n = qemu_plugin_tb_n_insns(tb);
    b->va = va;
    b->next = all_blocks;
    all_blocks = b;
    b->marker = NONE;
    b->vector = va >= vec_lo && va < vec_lo + VECTOR_TABLE_BYTES && (va & VECTOR_SLOT_MASK) == 0;
    for (int k = 0; k < markers; k++)
        if (marker_addr[k] == va) b->marker = k;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, exec_block, 0, b);
}

static void at_exit(qemu_plugin_id_t id, void *udata) {
    end_episode();
    FILE *f = fopen(getenv("TRAP_COSTS_OUT"), "w");
    if (!f) return;
    fprintf(f, "boot 1 %llu\n", (unsigned long long)boot_insns);
    for (int k = 0; k <= MAX_MARKERS; k++)
        if (episodes[k])
            fprintf(f, "%s %llu %llu\n", k == MAX_MARKERS ? "other" : marker_name[k],
                    (unsigned long long)episodes[k], (unsigned long long)insns[k]);
    fclose(f);
    const char *bp = getenv("TRAP_COSTS_BLOCKS");
    FILE *bf = bp ? fopen(bp, "w") : NULL;
    if (!bf) return;
    /* The same address may have several blocks (retranslated): one line each. */
    for (struct block *b = all_blocks; b; b = b->next)
        for (int k = 0; k <= MAX_MARKERS; k++)
            if (b->by_kind[k])
                fprintf(bf, "%llx %u %s %llu\n", (unsigned long long)b->va, b->n,
                        k == MAX_MARKERS ? "other" : marker_name[k], (unsigned long long)b->by_kind[k]);
    fprintf(bf, "overflow 0 other %llu\n", (unsigned long long)episode_overflow);
    fclose(bf);
}

static uint64_t env_hex(const char *name) {
    const char *v = getenv(name);
    return v ? strtoull(v, NULL, 16) : 0;
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                               int argc, char **argv) {
    lo = env_hex("TRAP_COSTS_LO");
    hi = env_hex("TRAP_COSTS_HI");
    vec_lo = env_hex("TRAP_COSTS_VECTORS");
    const char *path = getenv("TRAP_COSTS_MARKERS");
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f || !getenv("TRAP_COSTS_OUT") || lo >= hi) {
        fprintf(stderr, "trap_costs: TRAP_COSTS_{LO,HI,VECTORS,MARKERS,OUT} not set\n");
        return -1;
    }
    char line[256];
    while (markers < MAX_MARKERS && fgets(line, sizeof line, f)) {
        unsigned long long a;
        if (sscanf(line, "%llx %63s", &a, marker_name[markers]) == 2) marker_addr[markers++] = a;
    }
    fclose(f);
    per_block = getenv("TRAP_COSTS_BLOCKS") != NULL;
    qemu_plugin_register_vcpu_tb_trans_cb(id, translate);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
