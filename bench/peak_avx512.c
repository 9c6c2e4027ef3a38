// Register-only throughput of the AVX-512 VNNI products, on one core:
// vpdpbusd zmm (byte product, u8 x s8, 64 MACs each) and vpdpwssd zmm
// (16-bit product, 32 MACs each), the instructions of the avx512-vnni
// kernels. Built and run by bench/throughput.sh where the CPU has them.
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
#define N 8
#define LOOP(DOT) \
  __m512i a=_mm512_set1_epi8(3),b[N],acc[N]; \
  for(int i=0;i<N;i++){acc[i]=_mm512_setzero_si512();b[i]=_mm512_set1_epi8((char)(i+1));} \
  for(long it=0;it<iters;it++){ \
    _Pragma("GCC unroll 8") for(int i=0;i<N;i++) acc[i]=DOT(acc[i],a,b[i]); \
    __asm__ volatile("":"+v"(a)); } \
  __m512i s=acc[0];for(int i=1;i<N;i++)s=_mm512_add_epi32(s,acc[i]);return s;
__attribute__((noinline)) static __m512i bytes(long iters){ LOOP(_mm512_dpbusd_epi32) }
__attribute__((noinline)) static __m512i words(long iters){ LOOP(_mm512_dpwssd_epi32) }
int main(int argc,char**argv){
  long iters=argc>1?atol(argv[1]):50000000; double bb=1e9,bw=1e9; volatile int sink=0;
  for(int r=0;r<3;r++){
    double t=now(); __m512i s=bytes(iters); t=now()-t; if(t<bb)bb=t; sink+=_mm512_reduce_add_epi32(s);
    t=now(); s=words(iters); t=now()-t; if(t<bw)bw=t; sink+=_mm512_reduce_add_epi32(s);
  }
  printf("one core: vpdpbusd zmm %.1f G MAC/s, vpdpwssd zmm %.1f G MAC/s\n",
    64.0*N*iters/bb/1e9, 32.0*N*iters/bw/1e9);
  return 0;}
