/* -*- c++ -*- ----------------------------------------------------------
   nequip_pol: compute dipole/atom/pol: per-atom dipoles p_i = -dE/dE_i (e*A, 3 columns x y z),
   the derivative of the electric enthalpy with respect to the field at atom i, from the
   atomic_dipoles output of the last evaluation of pair allegro/pol or nequip/pol. They sum to
   the cell dipole P of compute pol/allegro (with a polarization offset P0 = f @ cell, each
   atom carries P0/N). With a per-atom field (atom-style efield components) they are the
   response to the field at each atom.
------------------------------------------------------------------------- */

#ifdef COMPUTE_CLASS
// clang-format off
ComputeStyle(dipole/atom/pol,ComputeDipoleAtomPol);
// clang-format on
#else

#ifndef LMP_COMPUTE_DIPOLE_ATOM_POL_H
#define LMP_COMPUTE_DIPOLE_ATOM_POL_H

#include "compute.h"

namespace LAMMPS_NS {

class PairPolBase;

class ComputeDipoleAtomPol : public Compute {
 public:
  ComputeDipoleAtomPol(class LAMMPS *, int, char **);
  ~ComputeDipoleAtomPol() override;
  void init() override;
  void compute_peratom() override;
  double memory_usage() override;

 private:
  PairPolBase *pair = nullptr;
  int nmax = 0;
  double **values = nullptr;
};

}    // namespace LAMMPS_NS

#endif
#endif
