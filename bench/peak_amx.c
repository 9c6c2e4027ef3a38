// Register-only throughput of AMX-INT8 on one core: tdpbusd on tiles that
// stay in their registers (16 x 64 bytes of A times 16 quads x 16 columns
// of B into 16 x 16 sums: 16,384 MACs each), four independent sums, the
// instruction of the amx kernels. Linux grants the tile state on request
// (arch_prctl); built and run by bench/throughput.sh where the CPU has
// AMX-INT8.
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
struct cfg { uint8_t palette, start; uint8_t res[14]; uint16_t colsb[16]; uint8_t rows[16]; uint8_t res2[16]; } __attribute__((aligned(64)));
int main(int argc,char**argv){
  if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */)) {
    printf("one core: tdpbusd (AMX) not granted by the kernel\n"); return 0; }
  long iters=argc>1?atol(argv[1]):2000000; double best=1e9;
  struct cfg c; memset(&c,0,sizeof c); c.palette=1;
  for(int i=0;i<8;i++){c.rows[i]=16;c.colsb[i]=64;}
  static uint8_t buf[16*64]; memset(buf,1,sizeof buf);
  _tile_loadconfig(&c);
  _tile_loadd(4,buf,64); _tile_loadd(5,buf,64); _tile_loadd(6,buf,64); _tile_loadd(7,buf,64);
  for(int r=0;r<3;r++){
    _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    double t=now();
    for(long it=0;it<iters;it++){
      _tile_dpbusd(0,4,6); _tile_dpbusd(1,4,7); _tile_dpbusd(2,5,6); _tile_dpbusd(3,5,7);
    }
    static int32_t out[256]; _tile_stored(0,out,64);
    t=now()-t; if(t<best)best=t;
  }
  _tile_release();
  printf("one core: tdpbusd (AMX) %.1f G MAC/s\n", 4.0*16384*iters/best/1e9);
  return 0;}
