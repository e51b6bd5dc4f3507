/* kt_zstd: zstd contexts per thread (creating one per call costs more than
 * compressing a few KB), freed when the thread ends. Used by the store (span
 * logs) and the inbox (request bodies). */
#ifndef KT_ZSTD_H
#define KT_ZSTD_H
#include <zstd.h>

/* The calling thread's contexts, or NULL when out of memory. */
ZSTD_CCtx *kt_zstd_cctx(void);
ZSTD_DCtx *kt_zstd_dctx(void);

#endif
