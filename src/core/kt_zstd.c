/* kt_zstd: see the header. */
#include "core/kt_zstd.h"

#include <pthread.h>
#include <stdlib.h>

struct zctx {
  ZSTD_CCtx *c;
  ZSTD_DCtx *d;
};
static pthread_key_t zkey;
static pthread_once_t zonce = PTHREAD_ONCE_INIT;

static void zctx_free(void *p)
{
  struct zctx *z = p;
  ZSTD_freeCCtx(z->c);
  ZSTD_freeDCtx(z->d);
  free(z);
}

static void zkey_make(void)
{
  pthread_key_create(&zkey, zctx_free);
}

static struct zctx *zctx(void)
{
  pthread_once(&zonce, zkey_make);
  struct zctx *z = pthread_getspecific(zkey);
  if (!z && (z = calloc(1, sizeof *z))) {
    z->c = ZSTD_createCCtx();
    z->d = ZSTD_createDCtx();
    pthread_setspecific(zkey, z);
  }
  return z;
}

ZSTD_CCtx *kt_zstd_cctx(void)
{
  struct zctx *z = zctx();
  return z ? z->c : NULL;
}

ZSTD_DCtx *kt_zstd_dctx(void)
{
  struct zctx *z = zctx();
  return z ? z->d : NULL;
}
